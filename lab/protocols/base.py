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
class Environment:
    """What the kernel under the lab offers, as far as configs must adapt to it."""

    ppp: bool = False  # /dev/ppp can be passed to nodes
    esp: bool = False  # kernel ESP; otherwise IPsec runs through strongSwan's kernel-libipsec
    wireguard: bool = False  # kernel WireGuard; otherwise wireguard-go

    @property
    def ipsec_backend(self) -> str:
        return "kernel" if self.esp else "libipsec"


@dataclass(frozen=True)
class ServerContext:
    topology: Topology
    plan: AddressPlan
    server: str
    secrets: LabSecrets
    environment: Environment = field(default_factory=Environment)

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
    environment: Environment = field(default_factory=Environment)

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
    needs_ppp: ClassVar[bool] = False  # nodes get /dev/ppp (where the kernel has PPP)

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

    # Shown in the up-check's "down" message when ping_source() gave no address in time.
    ping_source_note: ClassVar[str] = ""

    def ping_source(self, ctx: TunnelContext) -> str | None:
        """A tunnel with no interface of its own to ping through (policy-based IPsec) names
        the ping's source instead: a shell command printing it (empty while not ready)."""
        return None

    def still_trying(self, ctx: TunnelContext) -> tuple[str, str] | None:
        """(daemon, shell test): the up-check stops waiting as soon as the test fails (the
        client's daemon has given up), before the deadline."""
        return None

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        """Extra commands whose output is kept as evidence, by name."""
        return {}

    def server_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        """Commands run on the server after a check, by name (their output is evidence)."""
        return {"log": f"tail -n 20 {self.server_log()}"}

    def diagnose(self, evidence: dict[str, str]) -> list[str]:
        """Facts that explain the verdict, read from the evidence: the client's sections by
        name, 'server <name>' for the server's, 'router conntrack' (every entry between
        client and server, and GRE from the server) and 'router counters' (vpnlab rules
        that counted packets, as 'CHAIN: comment: packets')."""
        return []
