"""The ``router:`` step: a partial router section merged over the running router's, applied
to its rules without touching its conntrack table (issue 11).

A step names only what it changes::

    - router: {block: [udp/1194]}            # block replaced (a list replaces a list)
    - router: {passthrough: {pptp: false}}   # passthrough merged family by family
    - router: {block: []}                    # the block list emptied again

The merged section is checked with the topology's own ``Router`` model, rendered with the
same template as at bring-up and loaded with ``iptables-restore``: each table it names is
replaced in one commit, and the rule counters start again from zero. Connections the router
tracks stay (no flush), and so do what they were given when they began (a NAT mapping, a
conntrack helper): a change meets established flows only through the FORWARD rules, which
every packet crosses. Where vpnlab puts its drops matters: ``block`` and passthrough drops
come *before* the FORWARD accept of established traffic, so they also stop a tunnel that is
already up (docs/scenarios.md, scenario 6).
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import ValidationError

from lab.node_files import RUN_DIR
from lab.profiles import merge_router
from lab.router.helpers import HELPERS
from lab.topology.model import Router, quoted

CHANGEABLE = ("helpers", "helpers_for", "passthrough", "block", "allow_out")
# keys of a router section a running router cannot take, and why
FIXED = {
    "nat": "the NAT mode is fixed when the lab is built (the servers' routes back to the LAN depend on it); "
           "a router step cannot change it",
    "conntrack": "conntrack timeouts are the router's sysctls, set when it is created and not writable from "
                 "inside it; a router step cannot change them",
    "profile": "a profile is read when the lab is built; a router step names the keys it changes "
               f"({', '.join(CHANGEABLE)})",
}
# what the step shows of the router's rules: the chains vpnlab fills
RULE_CHAINS = (("raw", "PREROUTING"), ("raw", "OUTPUT"), ("nat", "POSTROUTING"), ("filter", "FORWARD"))

Location = tuple[Any, ...]


def router_step_problems(change: dict[Any, Any], base: Any = None) -> list[tuple[Location, str]]:
    """(location under the step's ``router``, message) for each key the partial section cannot
    hold: a key a running router cannot change, or what the Router model refuses once the
    partial is merged over ``base`` (the topology's router; the defaults when it is invalid)."""
    problems: list[tuple[Location, str]] = [((key,), FIXED[key]) for key in change if key in FIXED]
    partial = {key: value for key, value in change.items() if key not in FIXED}
    helpers = partial.get("helpers")
    for j, helper in enumerate(helpers if isinstance(helpers, list) else []):
        if isinstance(helper, str) and helper not in HELPERS:
            problems.append((("helpers", j), f"unknown helper '{quoted(helper)}' (known: {', '.join(HELPERS)})"))
    try:
        merged_router(base if isinstance(base, Router) else Router(), partial)
    except ValidationError as exc:
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = f"a router step changes only {', '.join(CHANGEABLE)}"
            problems.append((tuple(err["loc"]), message))
    return problems


def merged_router(current: Router, change: dict[str, Any]) -> Router:
    """``change`` over ``current``: mappings (passthrough) merged key by key, lists replaced.
    ValidationError when the Router model refuses the result."""
    return Router.model_validate(merge_router(current.model_dump(), change))


def router_changes(before: Router, after: Router) -> list[str]:
    """What the step changed, in words ("passthrough pptp off", "block udp/1194 added")."""
    said: list[str] = []
    said += [f"helper {h} added" for h in after.helpers if h not in before.helpers]
    said += [f"helper {h} removed" for h in before.helpers if h not in after.helpers]
    said += [f"helpers for {traffic} traffic on" for traffic in after.helpers_for if traffic not in before.helpers_for]
    said += [f"helpers for {traffic} traffic off" for traffic in before.helpers_for if traffic not in after.helpers_for]
    said += [f"passthrough {family} {'on' if on else 'off'}" for family, on in after.passthrough.items()
             if before.passthrough.get(family, True) != on]
    said += _rules_changed("block", [r.label for r in before.block], [r.label for r in after.block])
    if before.allow_out is None and after.allow_out is not None:
        said.append(f"allow_out set: only {', '.join(r.label for r in after.allow_out) or 'nothing'} may go out")
    elif before.allow_out is not None and after.allow_out is None:
        said.append("allow_out removed: everything may go out")
    elif before.allow_out is not None and after.allow_out is not None:
        said += _rules_changed("allow_out", [r.label for r in before.allow_out], [r.label for r in after.allow_out])
    return said


def _rules_changed(what: str, before: list[str], after: list[str]) -> list[str]:
    return ([f"{what} {label} added" for label in after if label not in before]
            + [f"{what} {label} removed" for label in before if label not in after])


def apply_command(ruleset: str, index: int) -> str:
    """Shell for the router: keep ``ruleset`` as a file and load it with iptables-restore (the
    back end bring-up chose: setup points the ``iptables`` alternatives at it). The ruleset
    goes through base64, so no character of it is ever read by the shell."""
    path = f"{RUN_DIR}/rules.step{index}.v4"
    encoded = base64.b64encode(ruleset.encode()).decode()
    return f"set -e; printf %s '{encoded}' | base64 -d > {path}; iptables-restore < {path}"


COUNT_COMMAND = "conntrack -C"
RULES_COMMAND = "; ".join(f"iptables -t {table} -v -S {chain}" for table, chain in RULE_CHAINS)


def conntrack_count(output: str) -> int | None:
    """``conntrack -C``'s count, or None when it printed something else."""
    words = output.split()
    return int(words[-1]) if words and words[-1].isdigit() else None
