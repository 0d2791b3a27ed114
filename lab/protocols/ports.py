"""Which ports a tunnel's traffic and its server use, once its options are applied.

A protocol's ``flows`` and ``listens`` are its defaults; an option may move them (OpenVPN's
``port``). Everything that matches a tunnel's traffic (the router's named drops, the
early-down watcher, the conntrack evidence, the reasons, the capture facts) asks
:func:`flows_of`, and the topology's checks below keep one port per server daemon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from lab.protocols import PROTOCOLS
from lab.protocols.base import Flow, Listen

if TYPE_CHECKING:  # pragma: no cover
    from lab.topology.model import Topology, Tunnel


def flows_of(tunnel: Tunnel) -> tuple[Flow, ...]:
    """The flows this tunnel's client sends to its server, its options applied."""
    return PROTOCOLS[tunnel.protocol].tunnel_flows(tunnel.options)


def moved_flows(topology: Topology) -> list[tuple[str, Flow]]:
    """(protocol, flow) of each flow the topology's tunnels moved off their protocol's own ports
    (OpenVPN on TCP 443), once each: the router names them in its strict drops, a capture
    counts them beside the registry's."""
    moved = [(t.protocol, f) for t in topology.tunnels if t.protocol in PROTOCOLS
             for f in flows_of(t) if f not in PROTOCOLS[t.protocol].flows]
    return list(dict.fromkeys(moved))


def port_clashes(listens: Mapping[str, tuple[Listen, ...]]) -> list[str]:
    """Two protocols on one server (``{protocol: its listens}``) that listen on the same port,
    unless one shared daemon (charon for every IPsec protocol) serves both."""
    clashes = []
    protocols = list(listens)
    for j, first in enumerate(protocols):
        for second in protocols[j + 1:]:
            ports = [
                mine.label
                for mine in listens[first]
                for theirs in listens[second]
                if (mine.proto, mine.port) == (theirs.proto, theirs.port)
                and (mine.shared_by is None or mine.shared_by != theirs.shared_by)
            ]
            if ports:
                clashes.append(
                    f"'{first}' and '{second}' cannot share a server: both listen on "
                    f"{' and '.join(dict.fromkeys(ports))} (use two servers)"
                )
    return clashes


def port_problems(tunnels: Sequence[Tunnel]) -> list[tuple[tuple[object, ...], str]]:
    """Located problems of the tunnels' moved ports: one server runs one daemon per protocol,
    so every tunnel to it agrees on that daemon's ports; and a moved port may not be a port
    of another registered protocol (on any server: the router's passthrough switches and the
    evidence match ports, and would take the tunnel's packets for that protocol's)."""
    problems: list[tuple[tuple[object, ...], str]] = []
    first: dict[tuple[str, str], int] = {}
    for i, tunnel in enumerate(tunnels):
        if tunnel.protocol not in PROTOCOLS:
            continue
        key = (tunnel.server, tunnel.protocol)
        if key not in first:
            first[key] = i
            continue
        protocol = PROTOCOLS[tunnel.protocol]
        theirs, mine = protocol.tunnel_listens(tunnels[first[key]].options), protocol.tunnel_listens(tunnel.options)
        if mine != theirs:
            ports = " and ".join(x.label for x in theirs)
            problems.append(((i, "options", "port"),
                             f"tunnels[{first[key]}] to server '{tunnel.server}' has its {tunnel.protocol} server on {ports}: "
                             f"one server runs one {tunnel.protocol} daemon on one port; give both tunnels the same "
                             "port or use another server"))
    for i, tunnel in enumerate(tunnels):
        if tunnel.protocol not in PROTOCOLS:
            continue
        for flow in flows_of(tunnel):
            if flow in PROTOCOLS[tunnel.protocol].flows:
                continue
            owners = [p.name for p in PROTOCOLS.values() if p.name != tunnel.protocol and flow in p.flows]
            if owners:
                problems.append(((i, "options", "port"),
                                 f"{flow.label} is the port of {' and '.join(owners)}: the router's passthrough "
                                 f"switches and the evidence would take this tunnel's packets for theirs; choose another port"))
    return problems
