"""What every VPN protocol module provides: configs, start commands, up-check, diagnosis.

A protocol module is pure: it renders files and shell commands from the
topology and the lab's credentials. The runtime copies the files into the
nodes and runs the commands; ``lab.check`` turns what it saw into a verdict.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import ClassVar

from lab.credentials import LabSecrets
from lab.topology.addressing import AddressPlan
from lab.topology.model import Topology, Tunnel

LOG_DIR = "/var/log/vpnlab"
RUN_DIR = "/run/vpnlab"
CONF_DIR = "/etc/vpnlab"


@dataclass(frozen=True)
class Flow:
    """Traffic a client sends to a server: an IP protocol and, for TCP/UDP, a port."""

    proto: str
    port: int | None = None

    @property
    def label(self) -> str:
        return f"{self.proto}/{self.port}" if self.port else self.proto


@dataclass(frozen=True)
class NodeFile:
    path: str
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class ServerContext:
    topology: Topology
    plan: AddressPlan
    server: str
    secrets: LabSecrets

    @property
    def wan_address(self) -> ipaddress.IPv4Address:
        return self.plan.servers[self.server]

    def tunnels(self, protocol: str) -> list[Tunnel]:
        return [t for t in self.topology.tunnels if t.server == self.server and t.protocol == protocol]


@dataclass(frozen=True)
class TunnelContext:
    topology: Topology
    plan: AddressPlan
    tunnel: Tunnel
    secrets: LabSecrets

    @property
    def server_wan(self) -> ipaddress.IPv4Address:
        return self.plan.servers[self.tunnel.server]

    @property
    def client_lan(self) -> ipaddress.IPv4Address:
        return self.plan.clients[self.tunnel.client]

    @property
    def log_path(self) -> str:
        return f"{LOG_DIR}/{self.tunnel.protocol}-{self.tunnel.server}.log"


@dataclass
class Diagnosis:
    """Protocol-specific reading of the evidence, in words a person understands."""

    facts: list[str] = field(default_factory=list)


class Protocol:
    name: ClassVar[str]
    octet: ClassVar[int]  # tunnel subnets are 10.<octet>.<server index>.0/24
    deadline: ClassVar[float] = 15.0
    flows: ClassVar[tuple[Flow, ...]]
    family: ClassVar[str | None] = None  # the router passthrough switch it depends on
    interface_prefix: ClassVar[str]

    def client_interface(self, ctx: TunnelContext) -> str:
        return f"{self.interface_prefix}{ctx.plan.server_index[ctx.tunnel.server]}"

    def server_interface(self) -> str:
        return f"{self.interface_prefix}0"

    def server_tunnel_address(self, plan: AddressPlan, server: str) -> ipaddress.IPv4Address:
        return plan.tunnel_server_address(self.octet, server)

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        raise NotImplementedError

    def server_start(self, ctx: ServerContext) -> list[str]:
        raise NotImplementedError

    def server_log(self) -> str:
        return f"{LOG_DIR}/{self.name}-server.log"

    def client_files(self, ctx: TunnelContext) -> list[NodeFile]:
        raise NotImplementedError

    def client_start(self, ctx: TunnelContext) -> list[str]:
        raise NotImplementedError

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        """Extra commands whose output is kept as evidence, by name."""
        return {}

    def diagnose(self, evidence: dict[str, str]) -> list[str]:
        """Facts read from the evidence that explain a tunnel that stayed down."""
        return []
