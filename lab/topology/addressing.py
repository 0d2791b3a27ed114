"""The lab's address plan, derived from the topology alone (no state kept).

LAN: the router owns the first address, clients follow from .10.
WAN: the router owns the first address, servers follow from .10.
Double NAT (``upstream:``): the router's WAN side is the middle segment instead, where the
upstream router owns the first address and the router the second; the upstream router
owns the WAN's first address.
Tunnels: each protocol has a network of its own (its ``tunnel_net``, e.g. 10.100.0.0/16)
and server number S gets its S-th /24 (10.100.S.0/24), so that one client can hold
several tunnels to one server at once; the server owns .1.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lab.errors import Problem
from lab.topology.model import Topology
from lab.topology.upstream import middle_network

FIRST_HOST = 10
STUN_ADDRESSES = 2  # the NAT probe's STUN node holds two WAN addresses after the servers (RFC 5780)
TUNNEL_PREFIX = 24  # one per server in a protocol's tunnel network


@dataclass(frozen=True)
class AddressPlan:
    lan: ipaddress.IPv4Network
    wan: ipaddress.IPv4Network
    router_lan: ipaddress.IPv4Address
    router_wan: ipaddress.IPv4Address
    clients: dict[str, ipaddress.IPv4Address]
    servers: dict[str, ipaddress.IPv4Address]
    server_index: dict[str, int]
    client_index: dict[str, int]
    # double NAT only (None without upstream:): the segment between the routers, and the
    # upstream router's addresses on it (the router's gateway) and on the WAN
    middle: ipaddress.IPv4Network | None = None
    upstream_lan: ipaddress.IPv4Address | None = None
    upstream_wan: ipaddress.IPv4Address | None = None

    @property
    def router_uplink(self) -> ipaddress.IPv4Network:
        """The segment the router's wan0 is on: the middle one under double NAT, else the WAN."""
        return self.middle or self.wan

    def tunnel_subnet(self, protocol_net: ipaddress.IPv4Network, server: str) -> ipaddress.IPv4Network:
        """The server's /24 in a protocol's tunnel network: the S-th, S = the server's index."""
        index = self.server_index[server]
        if protocol_net.prefixlen > TUNNEL_PREFIX or index >= 2 ** (TUNNEL_PREFIX - protocol_net.prefixlen):
            raise ValueError(f"{protocol_net} has no /{TUNNEL_PREFIX} for server number {index}")
        return ipaddress.IPv4Network((int(protocol_net.network_address) + (index << (32 - TUNNEL_PREFIX)), TUNNEL_PREFIX))

    def tunnel_server_address(self, protocol_net: ipaddress.IPv4Network, server: str) -> ipaddress.IPv4Address:
        return self.tunnel_subnet(protocol_net, server).network_address + 1

    def tunnel_client_address(
        self, protocol_net: ipaddress.IPv4Network, server: str, client: str
    ) -> ipaddress.IPv4Address:
        return self.tunnel_subnet(protocol_net, server).network_address + FIRST_HOST + self.client_index[client]


def capacity_problems(topology: Topology) -> list[Problem]:
    """Clients that the LAN, or servers (and the NAT probe's two addresses) that the WAN, has
    no room for: each segment's hosts start at .10 and stop before its last address."""
    problems = []
    lan, wan = topology.network.lan, topology.network.wan
    room_lan = lan.num_addresses - 2 - FIRST_HOST
    if len(topology.clients) > room_lan:
        problems.append(Problem(
            "clients", f"{len(topology.clients)} clients do not fit in the LAN {lan}: it has room for {room_lan} "
            f"(clients start at .{FIRST_HOST}); give network.lan a shorter prefix or use fewer clients",
        ))
    stun = STUN_ADDRESSES if topology.nat_probe else 0
    room_wan = wan.num_addresses - 2 - FIRST_HOST - stun
    if len(topology.servers) > room_wan:
        probe = f" besides the NAT probe's {STUN_ADDRESSES} addresses" if stun else ""
        problems.append(Problem(
            "servers", f"{len(topology.servers)} servers do not fit in the WAN {wan}: it has room for {room_wan}{probe} "
            f"(servers start at .{FIRST_HOST}); give network.wan a shorter prefix or use fewer servers",
        ))
    return problems


def plan_addresses(topology: Topology) -> AddressPlan:
    problems = capacity_problems(topology)
    if problems:  # validation refuses these first: reaching here is a bug, not a user's mistake
        raise ValueError("; ".join(str(p) for p in problems))
    lan, wan, middle = topology.network.lan, topology.network.wan, middle_network(topology)
    return AddressPlan(
        lan=lan,
        wan=wan,
        router_lan=lan.network_address + 1,
        router_wan=wan.network_address + 1 if middle is None else middle.network_address + 2,
        clients={c.name: lan.network_address + FIRST_HOST + i for i, c in enumerate(topology.clients)},
        servers={s.name: wan.network_address + FIRST_HOST + i for i, s in enumerate(topology.servers)},
        server_index={s.name: i for i, s in enumerate(topology.servers)},
        client_index={c.name: i for i, c in enumerate(topology.clients)},
        middle=middle,
        upstream_lan=None if middle is None else middle.network_address + 1,
        upstream_wan=None if middle is None else wan.network_address + 1,
    )
