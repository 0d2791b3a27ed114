"""Read a topology file and report every problem at once, each with its location.

Pydantic checks the shape of each field; the cross-references (a tunnel's
client, server and protocol, the router's helpers) are checked here on the
raw data so that they are reported even when the shape has problems too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lab.errors import Problem, TopologyError
from lab.router.dialing import ROUTER_CLIENT, dialing_problem
from lab.topology.addressing import capacity_problems
from lab.topology.model import RESERVED_NODE_NAMES, STUN_NODE, UPSTREAM_NODE, Topology, quoted
from lab.topology.source import MAX_BYTES, decode, parse_yaml, screen


def load_topology(path: str | Path) -> Topology:
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise TopologyError(str(path), [Problem("", f"cannot read the file ({exc.strerror})")]) from None
    return parse_topology(decode(raw, str(path)), source=str(path), base_dir=path.parent)


def parse_topology(text: str, source: str = "<topology>", base_dir: Path | None = None) -> Topology:
    """``base_dir``: where a relative ``router.profile`` path is looked for (the file's folder)."""
    data = parse_yaml(text, source)
    screen(data, source)
    if not isinstance(data, dict):
        raise TopologyError(source, [Problem("", "the topology must be a YAML mapping with name, servers, clients")])

    problems: list[Problem] = []
    for section in ("router", "upstream"):  # upstream: takes router:'s keys, a profile too
        router = data.get(section)
        if isinstance(router, dict) and "profile" in router:
            data = dict(data)
            data[section], profile_problems = apply_profile(router, base_dir, section)
            problems += profile_problems
    topology: Topology | None = None
    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        problems += [problem_from_pydantic(err) for err in exc.errors()]
    problems += cross_reference_problems(data)
    if topology is not None:
        problems += capacity_problems(topology)

    unique = sorted(dict.fromkeys(problems), key=_document_order)
    if unique or topology is None:
        raise TopologyError(source, unique)
    return topology


TOP_LEVEL_ORDER = ["", "name", "description", "router", "upstream", "network", "nat_probe", "servers", "clients", "tunnels"]


def _document_order(problem: Problem) -> tuple[object, ...]:
    head = re.split(r"[.\[]", problem.location, maxsplit=1)[0]
    rank = TOP_LEVEL_ORDER.index(head) if head in TOP_LEVEL_ORDER else len(TOP_LEVEL_ORDER)
    numbers = tuple(int(n) for n in re.findall(r"\[(\d+)\]", problem.location))
    return (rank, numbers, problem.location)


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after[check_name(), str]", "[key]"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def apply_profile(router: dict[str, Any], base_dir: Path | None, section: str = "router") -> tuple[dict[str, Any], list[Problem]]:
    """``router: {profile: REF, ...overrides}`` -> the profile's router keys with the overrides
    on top (nested mappings merged key by key), or the problem that prevents it."""
    from lab.profiles import ProfileError, load_profile, merge_router

    ref = router["profile"]
    overrides = {k: v for k, v in router.items() if k != "profile"}
    if not isinstance(ref, str) or not ref.strip():
        return overrides, [Problem(f"{section}.profile", "must be a profile name (e.g. open) or the path of a profile file")]
    if base_dir is not None and not Path(ref).is_absolute() and (base_dir / ref).is_file():
        ref = str(base_dir / ref)
    try:
        profile = load_profile(ref)
    except ProfileError as exc:
        if exc.source == ref and len(exc.problems) == 1 and not exc.problems[0].location:
            return overrides, [Problem(f"{section}.profile", exc.problems[0].message)]
        detail = "; ".join(f"{p}" for p in exc.problems)
        return overrides, [Problem(f"{section}.profile", f"profile {exc.source} cannot be used: {detail}")]
    return merge_router(profile.router, overrides), []


def problem_from_pydantic(err: Any) -> Problem:
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        msg = "unknown field (see the topology schema in the README)"
    elif kind == "missing":
        msg = "required field is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return Problem(_location(tuple(err["loc"])), msg)


def _listed(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _names(items: list[Any]) -> list[str]:
    return [i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)]


def cross_reference_problems(data: dict[str, Any]) -> list[Problem]:
    # Imported here: the protocol modules use the model, the model's checks use their names.
    from lab.protocols import PROTOCOLS
    from lab.protocols.ports import port_clashes
    from lab.router.helpers import HELPERS

    problems: list[Problem] = []
    known_protocols = ", ".join(PROTOCOLS)
    servers = _listed(data, "servers")
    clients = _listed(data, "clients")
    server_names = list(dict.fromkeys(_names(servers)))
    client_names = list(dict.fromkeys(_names(clients)))

    reserved = RESERVED_NODE_NAMES | ({STUN_NODE} if data.get("nat_probe") is True else set())
    reserved |= {UPSTREAM_NODE} if data.get("upstream") is not None else set()
    seen: dict[str, str] = {}
    for key, items in (("servers", servers), ("clients", clients)):
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            where = f"{key}[{i}].name"
            if name == STUN_NODE and name in reserved:
                problems.append(Problem(where, f"'{name}' is reserved for the NAT probe's node (nat_probe: true); choose another name"))
            elif name == UPSTREAM_NODE and name in reserved:
                problems.append(Problem(where, f"'{name}' is reserved for the upstream router's node (upstream:); choose another name"))
            elif name in reserved:
                problems.append(Problem(where, f"'{name}' is reserved for the lab's own node; choose another name"))
            elif name in seen:
                problems.append(Problem(where, f"'{name}' is already used by {seen[name]}"))
            else:
                seen[name] = where

    served: dict[str, list[str]] = {}
    for i, server in enumerate(servers):
        protocols = server.get("protocols") if isinstance(server, dict) else None
        if not isinstance(protocols, list):
            continue
        for j, proto in enumerate(protocols):
            where = f"servers[{i}].protocols[{j}]"
            if not isinstance(proto, str):
                continue  # the shape check says it must be text
            if proto not in PROTOCOLS:
                problems.append(Problem(where, f"unknown protocol '{quoted(proto)}' (known: {known_protocols})"))
            elif proto in protocols[:j]:
                problems.append(Problem(where, f"protocol '{proto}' is listed twice"))
        known = [p for p in dict.fromkeys(p for p in protocols if isinstance(p, str)) if p in PROTOCOLS]
        clashes = port_clashes({p: PROTOCOLS[p].listens for p in known})
        problems += [Problem(f"servers[{i}].protocols", clash) for clash in clashes]
        if isinstance(server.get("name"), str):
            served[server["name"]] = [p for p in protocols if isinstance(p, str)]

    for section in ("router", "upstream"):
        router = data.get(section)
        helpers = router.get("helpers") if isinstance(router, dict) else None
        for i, helper in enumerate(helpers if isinstance(helpers, list) else []):
            if isinstance(helper, str) and helper not in HELPERS:
                problems.append(
                    Problem(f"{section}.helpers[{i}]", f"unknown helper '{quoted(helper)}' (known: {', '.join(HELPERS)})")
                )

    seen_tunnels: dict[tuple[Any, Any, Any], int] = {}
    for i, tunnel in enumerate(_listed(data, "tunnels")):
        if not isinstance(tunnel, dict):
            continue
        client, server, proto = tunnel.get("client"), tunnel.get("server"), tunnel.get("protocol")
        if client == ROUTER_CLIENT and isinstance(proto, str) and proto in PROTOCOLS:
            if (why := dialing_problem(proto)) is not None:
                problems.append(Problem(f"tunnels[{i}].protocol", why))
        elif isinstance(client, str) and client not in client_names:
            problems.append(Problem(f"tunnels[{i}].client", f"no client named '{quoted(client)}' (clients: {', '.join(client_names) or 'none'})"))
        if isinstance(server, str) and server not in server_names:
            problems.append(Problem(f"tunnels[{i}].server", f"no server named '{quoted(server)}' (servers: {', '.join(server_names) or 'none'})"))
        if isinstance(proto, str):
            if proto not in PROTOCOLS:
                problems.append(Problem(f"tunnels[{i}].protocol", f"unknown protocol '{quoted(proto)}' (known: {known_protocols})"))
            elif isinstance(server, str) and server in served and proto not in served[server]:
                problems.append(
                    Problem(
                        f"tunnels[{i}].protocol",
                        f"server '{server}' does not serve '{proto}' (add it to its protocols: {', '.join(served[server])})",
                    )
                )
        key = (client, server, proto)
        if not all(part is None or isinstance(part, str) for part in key):
            continue  # a list or mapping here is a shape problem, and cannot be compared as a key
        if key in seen_tunnels:
            problems.append(Problem(f"tunnels[{i}]", f"same client, server and protocol as tunnels[{seen_tunnels[key]}]"))
        else:
            seen_tunnels[key] = i
    return problems
