"""One plan per lab: everything a topology implies, made once and read by everyone after.

``plan_lab(topology, environment)`` derives the address plan, the router plan,
every tunnel's context and (on first use) every node's spec with its rendered
files. Bring-up reads the node specs, the check phase reads the tunnel contexts
and the router plan, reports read the topology: nobody plans a second time.

A lab that is already running is checked from a plan made again from the
topology kept in its router, without secrets (``secrets=None``): checking
renders nothing that holds a key, so asking such a plan for node specs is an
error rather than a silent second set of credentials.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property

from lab.credentials import LabSecrets
from lab.nodes import NodeSpec, client_node, router_node, server_node, stun_node, upstream_node
from lab.protocols.base import Environment, TunnelContext
from lab.router.rules import RouterPlan, plan_router, plan_upstream
from lab.topology.addressing import FIRST_HOST, AddressPlan, plan_addresses
from lab.topology.model import Topology


@dataclass(frozen=True)
class LabPlan:
    topology: Topology
    addresses: AddressPlan
    environment: Environment
    router: RouterPlan
    tunnels: tuple[TunnelContext, ...]  # index-aligned with topology.tunnels
    secrets: LabSecrets | None = field(default=None, repr=False, compare=False)
    upstream: RouterPlan | None = None  # the upstream router (double NAT), when the topology has one

    @property
    def name(self) -> str:
        return self.topology.name

    @cached_property
    def nodes(self) -> tuple[NodeSpec, ...]:
        """Every node to create, router (and upstream router) first, with its files rendered (needs the secrets)."""
        if self.secrets is None:
            raise RuntimeError(f"lab '{self.name}': this plan was made for checking only and holds no secrets")
        servers = [server_node(self, server.name) for server in self.topology.servers]
        stun = [stun_node(self)] if self.topology.nat_probe else []
        clients = [client_node(self, client.name) for client in self.topology.clients]
        upstream = [upstream_node(self, self.upstream)] if self.upstream else []
        return (router_node(self), *upstream, *servers, *stun, *clients)

    @property
    def stun_addresses(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        """The STUN node's primary and alternate WAN addresses (RFC 5780 needs two): the
        two WAN addresses right after the servers' (.10 + number of servers, and the next)."""
        last_server = self.addresses.wan.network_address + FIRST_HOST + len(self.topology.servers) - 1
        primary, alternate = last_server + 1, last_server + 2
        if alternate >= self.addresses.wan.broadcast_address:
            raise ValueError(f"{self.addresses.wan} has no room for the NAT probe's two addresses")
        return primary, alternate

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    def tunnels_of(self, client: str) -> list[TunnelContext]:
        return [ctx for ctx in self.tunnels if ctx.tunnel.client == client]


def plan_lab(
    topology: Topology, environment: Environment | None = None, secrets: LabSecrets | None = None
) -> LabPlan:
    """The lab's plan; pass ``secrets`` (``LabSecrets(topology.name)``) to bring it up."""
    environment = environment or Environment()
    addresses = plan_addresses(topology)
    return LabPlan(
        topology=topology,
        addresses=addresses,
        environment=environment,
        router=plan_router(topology, addresses),
        tunnels=tuple(TunnelContext(topology, addresses, t, secrets, environment) for t in topology.tunnels),
        secrets=secrets,
        upstream=plan_upstream(topology, addresses),
    )
