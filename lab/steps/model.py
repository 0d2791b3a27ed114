"""The ``steps:`` of a topology: what a scenario does, in order, after the lab is up.

Each step is a one-key mapping::

    - check: {expect: {alice/wireguard: up}, from: server}   # decide tunnels (probe from the server)
    - wait: 12                                               # idle: no probe traffic
    - flush: conntrack                                       # empty the router's conntrack table
    - exec: {node: router, run: "conntrack -L"}             # the user's own command, via sh -c
    - router: {block: [udp/1194]}                            # change the running router's rules
    - upstream: {passthrough: {ipsec: false}}                # the same, on the upstream router (double NAT)
    - capture: {node: router, interface: wan0, during: [...]} # a pcap of that interface around those steps

This module knows nothing about Docker. It does not import ``lab.topology.model`` (which
imports it); the cross-checks that need the topology's tunnels and nodes take them as
arguments and are called from there.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from lab.quoting import quoted  # not from lab.topology: that package imports this module

KINDS = ("check", "wait", "flush", "exec", "router", "upstream", "capture")
TUNNEL_NAME_RULE = "CLIENT/PROTOCOL, or CLIENT/SERVER/PROTOCOL where the client has that protocol to several servers"
MAX_WAIT = 3600
# A Linux interface name (IFNAMSIZ: at most 15 bytes; no '/', ':' or blank), or tcpdump's "any";
# whether the node has it is asked when the step runs, as ``vpnlab capture`` does.
INTERFACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")  # always fullmatch


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CheckSpec(_Strict):
    # tunnel name -> expected verdict, in the order written
    expect: dict[StrictStr, Literal["up", "down"]] = Field(min_length=1)
    # who sends the probe: the client (to the server's tunnel address) or the server (to the
    # client's tunnel address: traffic from the outside in, which an expired NAT entry breaks)
    direction: Literal["client", "server"] = Field(default="client", alias="from")
    # the probe's ICMP payload in bytes, sent with DF set (ping -M do -s SIZE): a path-MTU
    # black hole passes the up-check's small pings and swallows these; None: ping's default
    size: int | None = Field(default=None, ge=16, le=8972, strict=True)


class ExecSpec(_Strict):
    node: StrictStr
    run: StrictStr  # run as `sh -c RUN` in the node; never written into any file

    @field_validator("run")
    @classmethod
    def one_command_line(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the command is empty")
        if "\x00" in value:
            raise ValueError("the command holds a NUL character")
        return value


class CaptureSpec(_Strict):
    node: StrictStr
    # default as ``vpnlab capture``'s: the router's WAN side, a client's or server's eth0
    interface: StrictStr | None = None
    during: list[Step]  # a capture among them records at the same time (another node)

    @field_validator("interface")
    @classmethod
    def interface_name(cls, value: str | None) -> str | None:
        if value is not None and not INTERFACE_RE.fullmatch(value):
            raise ValueError(f"'{quoted(value)}' is not an interface name (letters, digits, '_', '.' and '-', at most 15 characters)")
        return value

    @field_validator("during")
    @classmethod
    def some_steps(cls, value: list[Step]) -> list[Step]:
        if not value:
            raise ValueError("a capture records around its steps: give during at least one step")
        return value


class Step(_Strict):
    check: CheckSpec | None = None
    wait: float | None = Field(default=None, gt=0, le=MAX_WAIT, strict=True)
    flush: Literal["conntrack"] | None = None
    exec: ExecSpec | None = None
    # a partial ``router:`` section (lab.steps.router_change checks its content against the
    # topology's Router model, beside the other cross-checks of step_problems)
    router: dict[StrictStr, Any] | None = Field(default=None, min_length=1)
    upstream: dict[StrictStr, Any] | None = Field(default=None, min_length=1)  # the same, for upstream:
    capture: CaptureSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def one_key(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not value:
            raise ValueError(f"a step is a mapping with one key: {', '.join(KINDS)}")
        known = [key for key in value if key in KINDS]
        if len(known) > 1:
            raise ValueError(f"a step has one key, not {len(known)} ({', '.join(known)}): write one step each")
        return value

    @property
    def kind(self) -> str:
        return next(kind for kind in KINDS if getattr(self, kind) is not None)


CaptureSpec.model_rebuild()  # its ``during`` holds Steps


def flattened(steps: list[Step]) -> list[Step]:
    """The steps in the order they run: a capture's ``during`` steps in its place."""
    return [inner for step in steps for inner in ([step, *flattened(step.capture.during)] if step.capture else [step])]


def tunnel_index(name: str, tunnels: list[Any]) -> int:
    """The index of the tunnel ``name`` means (CLIENT/PROTOCOL or CLIENT/SERVER/PROTOCOL);
    ValueError saying why when it names none or several."""
    parts = name.split("/")
    if len(parts) == 2:
        matches = [i for i, t in enumerate(tunnels) if (t.client, t.protocol) == (parts[0], parts[1])]
    elif len(parts) == 3:
        matches = [i for i, t in enumerate(tunnels) if (t.client, t.server, t.protocol) == tuple(parts)]
    else:
        raise ValueError(f"'{name}' is not a tunnel name ({TUNNEL_NAME_RULE})")
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(tunnel_label(i, tunnels) for i in range(len(tunnels))) or "none"
        raise ValueError(f"no tunnel '{name}' (tunnels: {known})")
    several = ", ".join(f"{tunnels[i].client}/{tunnels[i].server}/{tunnels[i].protocol}" for i in matches)
    raise ValueError(f"'{name}' names {len(matches)} tunnels ({several}): name the server too")


def tunnel_label(index: int, tunnels: list[Any]) -> str:
    """The shortest name of a tunnel that names it alone."""
    t = tunnels[index]
    twins = [u for u in tunnels if (u.client, u.protocol) == (t.client, t.protocol)]
    return f"{t.client}/{t.protocol}" if len(twins) == 1 else f"{t.client}/{t.server}/{t.protocol}"


def step_problems(steps: Any, tunnels: list[Any], nodes: list[str], router: Any = None,
                  upstream: Any = None, within: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """(location under ``steps``, message) for each step naming a tunnel or a node the topology
    lacks, or changing the router (``router``: the topology's, when valid) or the upstream
    router (``upstream``: the topology's; None when it has none, False when it is invalid) in a
    way its model refuses, a capture's ``during`` steps included (``within``: the location of
    that list). Reads the raw ``steps`` (whatever their shape) so that these are reported
    beside the shape's problems."""
    from lab.steps.router_change import router_step_problems  # it imports lab.topology.model, which imports this

    problems: list[tuple[tuple[Any, ...], str]] = []
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        at = (*within, i)
        check = step.get("check") if isinstance(step, dict) else None
        expect = check.get("expect") if isinstance(check, dict) else None
        for name in expect if isinstance(expect, dict) else []:
            try:
                tunnel_index(str(name), tunnels)
            except ValueError as exc:
                problems.append(((*at, "check", "expect", name), str(exc)))
        for kind in ("exec", "capture"):
            spec = step.get(kind) if isinstance(step, dict) else None
            node = spec.get("node") if isinstance(spec, dict) else None
            if isinstance(node, str) and node not in nodes:
                problems.append(((*at, kind, "node"), f"no node '{node}' (nodes: {', '.join(nodes)})"))
        change = step.get("router") if isinstance(step, dict) else None
        if isinstance(change, dict):
            problems += [((*at, "router", *loc), message) for loc, message in router_step_problems(change, router)]
        change = step.get("upstream") if isinstance(step, dict) else None
        if isinstance(change, dict) and upstream is None:
            problems.append(((*at, "upstream"), "the topology has no upstream: router to change"))
        elif isinstance(change, dict):
            problems += [((*at, "upstream", *loc), message) for loc, message in router_step_problems(change, upstream)]
        capture = step.get("capture") if isinstance(step, dict) else None
        if isinstance(capture, dict):
            problems += step_problems(capture.get("during"), tunnels, nodes, router, upstream, (*at, "capture", "during"))
    return problems


def named_tunnels(steps: list[Step], tunnels: list[Any]) -> list[int]:
    """Indices of the tunnels some check step names, in the order first named."""
    named = [tunnel_index(name, tunnels) for step in flattened(steps) if step.check for name in step.check.expect]
    return list(dict.fromkeys(named))
