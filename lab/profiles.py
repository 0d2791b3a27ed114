"""Router profiles: named router configurations shipped as data, each with what it stands for
and, per protocol, the outcome expected through it (and why, for every tunnel that stays down).

A profile file (``profiles/<name>.yml`` in this repository, packaged with vpnlab; or any
``.yml`` file a user names by path)::

    name: no-helpers
    description: plain Linux NAT with no conntrack helper attached (...)
    router:                 # the keys of a topology's router: section
      nat: masquerade
      helpers: []
    expect: {wireguard: up, openvpn-udp: up, ..., pptp: down}   # every registered protocol
    reasons: {pptp: "..."}  # required for every down cell; optional for an up one

A topology uses one with ``router: {profile: NAME_OR_PATH, ...overrides}``
(``lab.topology.load`` merges them). Every problem in a file is reported at once, each
located as ``profiles/x.yml: router.nat: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lab.errors import Problem, VpnlabError
from lab.resources import profiles_dir

# The default order (the matrix's columns): the open router, then one switch off at a time,
# then the stricter and stranger ones, and the control row last.
BUILTIN_ORDER = ("open", "no-helpers", "pptp-off", "l2tp-off", "ipsec-off", "all-off", "strict", "symmetric", "routed")
OUTCOMES = ("up", "down")
PROFILE_KEYS = ("name", "description", "router", "expect", "reasons")
FORMAT_HELP = "see docs/profiles.md for the profile format"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str  # which real routers it stands for
    source: str  # "builtin" or the file path
    router: dict[str, Any]  # keys of a topology's router: section (validated by the Router model)
    expect: dict[str, str]  # protocol -> "up" | "down" (every registered protocol)
    reasons: dict[str, str]  # protocol -> why, for every "down" (and optionally for "up")

    def reason(self, protocol: str) -> str:
        return self.reasons.get(protocol, "")


class ProfileError(VpnlabError):
    """A profile that cannot be used: names the file and every field at fault."""

    def __init__(self, source: str, problems: list[Problem], *, hint: str | None = None):
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {p}" for p in self.problems]
        super().__init__("\n".join(lines), hint=hint or f"fix the fields named above ({FORMAT_HELP})")


def builtin_profiles() -> list[str]:
    """The shipped profiles' names: the default order first, any others after, by name."""
    folder = profiles_dir()
    found = sorted(p.stem for p in folder.glob("*.yml")) if folder else []
    return [n for n in BUILTIN_ORDER if n in found] + [n for n in found if n not in BUILTIN_ORDER]


def load_profile(ref: str) -> Profile:
    """A shipped profile by name ('open'), or a user profile: a path to a .yml file."""
    folder = profiles_dir()
    if folder is not None and (folder / f"{ref}.yml").is_file():
        path = folder / f"{ref}.yml"
        return parse_profile(path.read_text(), source=f"profiles/{ref}.yml", builtin=True)
    if not _looks_like_path(ref):
        known = ", ".join(builtin_profiles()) or "none"
        raise ProfileError(
            ref, [Problem("", f"unknown profile '{ref}' (known: {known})")],
            hint="name a shipped profile, or give the path of a profile file (.yml)",
        )
    path = Path(ref)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(ref, [Problem("", f"cannot read the profile file ({exc.strerror})")],
                           hint="give the path of a profile file (.yml)") from None
    return parse_profile(text, source=ref)


def _looks_like_path(ref: str) -> bool:
    return "/" in ref or ref.endswith((".yml", ".yaml")) or Path(ref).is_file()


def parse_profile(text: str, source: str = "<profile>", builtin: bool = False) -> Profile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProfileError(source, [Problem(where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")]) from None
    if not isinstance(data, dict):
        raise ProfileError(source, [Problem("", "a profile is a YAML mapping with name, description, router, expect")])

    problems = [Problem(str(key), f"unknown field (allowed: {', '.join(PROFILE_KEYS)})")
                for key in data if key not in PROFILE_KEYS]
    name, description = data.get("name"), data.get("description")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(key, "required: a non-empty text"))
    router = data.get("router", {})
    if not isinstance(router, dict):
        problems.append(Problem("router", "must be a mapping of the topology's router: keys (nat, helpers, ...)"))
        router = {}
    problems += router_problems(router, "router")
    expect, expect_problems = _expectations(data.get("expect"))
    reasons, reason_problems = _reasons(data.get("reasons"), expect)
    problems += expect_problems + reason_problems
    if problems:
        raise ProfileError(source, problems)
    return Profile(
        name=str(name).strip(),
        description=" ".join(str(description).split()),
        source="builtin" if builtin else source,
        router=router,
        expect=expect,
        reasons=reasons,
    )


def router_problems(router: dict[str, Any], where: str) -> list[Problem]:
    """Problems of a router: mapping, as the topology loader would report them, located under ``where``."""
    from lab.router.helpers import HELPERS
    from lab.topology.load import problem_from_pydantic
    from lab.topology.model import Router

    problems: list[Problem] = []
    if "profile" in router:
        problems.append(Problem(f"{where}.profile", "a profile cannot name another profile"))
        router = {k: v for k, v in router.items() if k != "profile"}
    try:
        Router.model_validate(router)
    except ValidationError as exc:
        for err in exc.errors():
            problem = problem_from_pydantic(err)
            location = f"{where}.{problem.location}" if problem.location else where
            problems.append(Problem(location, problem.message))
    helpers = router.get("helpers")
    if isinstance(helpers, list):
        for i, helper in enumerate(helpers):
            if helper not in HELPERS:
                problems.append(Problem(f"{where}.helpers[{i}]", f"unknown helper '{helper}' (known: {', '.join(HELPERS)})"))
    return problems


def _expectations(raw: object) -> tuple[dict[str, str], list[Problem]]:
    from lab.protocols import PROTOCOLS

    known = list(PROTOCOLS)
    if not isinstance(raw, dict):
        return {}, [Problem("expect", f"required: a mapping of every protocol to up or down ({', '.join(known)})")]
    problems = []
    expect: dict[str, str] = {}
    for protocol, outcome in raw.items():
        if protocol not in PROTOCOLS:
            problems.append(Problem(f"expect.{protocol}", f"unknown protocol '{protocol}' (known: {', '.join(known)})"))
        elif outcome not in OUTCOMES:
            problems.append(Problem(f"expect.{protocol}", f"'{outcome}' is not an outcome (allowed: up, down)"))
        else:
            expect[protocol] = outcome
    for protocol in known:
        if protocol not in raw:
            problems.append(Problem(f"expect.{protocol}", "missing: say up or down for every protocol"))
    return {p: expect[p] for p in known if p in expect}, problems


def _reasons(raw: object, expect: dict[str, str]) -> tuple[dict[str, str], list[Problem]]:
    from lab.protocols import PROTOCOLS

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return {}, [Problem("reasons", "must be a mapping of protocol to the reason for its outcome")]
    problems = []
    reasons: dict[str, str] = {}
    for protocol, text in raw.items():
        if protocol not in PROTOCOLS:
            problems.append(Problem(f"reasons.{protocol}", f"unknown protocol '{protocol}' (known: {', '.join(PROTOCOLS)})"))
        elif not isinstance(text, str) or not text.strip():
            problems.append(Problem(f"reasons.{protocol}", "must be a non-empty text"))
        else:
            reasons[protocol] = " ".join(text.split())
    for protocol, outcome in expect.items():
        if outcome == "down" and protocol not in reasons and protocol not in raw:
            problems.append(Problem(f"reasons.{protocol}", "missing: a down cell needs the reason it stays down"))
    return reasons, problems


def merge_router(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A profile's router keys with a topology's on top; nested mappings (passthrough,
    conntrack) merged key by key, everything else (lists too) replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_router(merged[key], value)
        else:
            merged[key] = value
    return merged
