"""From a topology to the nodes the runtime must create: pure data, no Docker.

Each NodeSpec says what container to make (image role, capabilities,
devices, sysctls), how it is wired (links to the lab's LAN or WAN switch),
which files to copy in and which shell lines set it up. Golden-file tests
render these without any engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.credentials import LabSecrets
from lab.protocols import PROTOCOLS
from lab.protocols.base import CONF_DIR, LOG_DIR, RUN_DIR, Environment, NodeFile, ServerContext, TunnelContext
from lab.render import render
from lab.router.rules import LAN_IF, WAN_IF, plan_router, render_ruleset
from lab.tunnels import tunnel_files
from lab.topology.addressing import AddressPlan, plan_addresses
from lab.topology.model import Topology

# Docker's default set minus what no lab node uses.
DROPPED_CAPS = ["MKNOD", "AUDIT_WRITE", "SETFCAP", "SYS_CHROOT"]
TUN = "/dev/net/tun"
PPP = "/dev/ppp"


@dataclass(frozen=True)
class Link:
    segment: str  # "lan" or "wan": the switch bridge this link plugs into
    ifname: str
    address: str  # CIDR


@dataclass
class NodeSpec:
    name: str
    role: str  # router, client, server
    links: list[Link]
    routes: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=lambda: ["NET_ADMIN"])
    devices: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    files: list[NodeFile] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)

    def setup_script(self) -> str:
        return render("common/setup.sh.j2", node=self, log_dir=LOG_DIR, run_dir=RUN_DIR)


@dataclass
class LabSpec:
    topology: Topology
    plan: AddressPlan
    nodes: list[NodeSpec]

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)


def tunnel_context(
    topology: Topology, plan: AddressPlan, index: int, secrets: LabSecrets, environment: Environment
) -> TunnelContext:
    return TunnelContext(topology, plan, topology.tunnels[index], secrets, environment)


def _devices(protocols: set[str], environment: Environment) -> list[str]:
    devices = [TUN]
    if environment.ppp and any(PROTOCOLS[p].needs_ppp for p in protocols):
        devices.append(PPP)
    return devices


def build_lab(topology: Topology, secrets: LabSecrets, environment: Environment | None = None) -> LabSpec:
    environment = environment or Environment()
    plan = plan_addresses(topology)
    prefix_lan, prefix_wan = plan.lan.prefixlen, plan.wan.prefixlen
    router_plan = plan_router(topology, plan)
    router = NodeSpec(
        name="router",
        role="router",
        links=[
            Link("lan", LAN_IF, f"{plan.router_lan}/{prefix_lan}"),
            Link("wan", WAN_IF, f"{plan.router_wan}/{prefix_wan}"),
        ],
        sysctls=router_plan.sysctls,
        files=[NodeFile(f"{CONF_DIR}/rules.v4", render_ruleset(router_plan))],
        setup=[f"vpnlab_iptables_restore {CONF_DIR}/rules.v4"],
    )
    nodes = [router]
    for server in topology.servers:
        ctx = ServerContext(topology, plan, server.name, secrets, environment)
        node = NodeSpec(
            name=server.name,
            role="server",
            links=[Link("wan", "eth0", f"{plan.servers[server.name]}/{prefix_wan}")],
            devices=_devices(set(server.protocols), environment),
        )
        for proto_name in server.protocols:
            proto = PROTOCOLS[proto_name]
            node.files += proto.server_files(ctx)
            node.setup += proto.server_start(ctx)
        nodes.append(node)
    for client in topology.clients:
        node = NodeSpec(
            name=client.name,
            role="client",
            links=[Link("lan", "eth0", f"{plan.clients[client.name]}/{prefix_lan}")],
            routes=[f"default via {plan.router_lan} dev eth0"],
            devices=_devices({t.protocol for t in topology.tunnels if t.client == client.name}, environment),
        )
        for i, tunnel in enumerate(topology.tunnels):
            if tunnel.client == client.name:
                ctx = tunnel_context(topology, plan, i, secrets, environment)
                node.files += PROTOCOLS[tunnel.protocol].client_files(ctx) + tunnel_files(ctx)
        nodes.append(node)
    for node in nodes:
        node.files = _dedupe(node.files)
    return LabSpec(topology, plan, nodes)


def _dedupe(files: list[NodeFile]) -> list[NodeFile]:
    by_path: dict[str, NodeFile] = {}
    for f in files:
        by_path[f.path] = f
    return list(by_path.values())
