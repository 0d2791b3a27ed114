"""From a lab plan to the nodes the runtime must create: pure data, no Docker.

Each NodeSpec says what container to make (image role, capabilities,
devices, sysctls), how it is wired (links to the lab's LAN or WAN switch),
which files to copy in and which shell lines set it up. Golden-file tests
render these without any engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from lab.protocols import PROTOCOLS
from lab.protocols.base import CONF_DIR, LOG_DIR, RUN_DIR, Environment, NodeFile, ServerContext
from lab.render import render
from lab.router.dialing import SYSLOGD
from lab.router.rules import RouterPlan, render_ruleset
from lab.check.scripts import tunnel_files
from lab.topology.links import LinkConditions
from lab.topology.model import STUN_NODE

if TYPE_CHECKING:  # pragma: no cover
    from lab.plan import LabPlan

# Docker's default set minus what no lab node uses.
DROPPED_CAPS = ["MKNOD", "AUDIT_WRITE", "SETFCAP", "SYS_CHROOT"]
TUN = "/dev/net/tun"
PPP = "/dev/ppp"


@dataclass(frozen=True)
class Link:
    segment: str  # "lan", "wan" or "middle" (double NAT): the switch bridge this link plugs into
    ifname: str
    address: str  # CIDR
    secondary: tuple[str, ...] = ()  # more CIDRs on the same interface (the STUN node's alternate address)
    mtu: int | None = None  # both ends of the veth (lab.runtime.wiring); None: the kernel's 1500
    netem: str = ""  # `tc ... netem` arguments for what the node sends (LinkConditions.netem_args)


def conditioned(link: Link, conditions: LinkConditions) -> Link:
    """``link`` with the topology's conditions on it (numbers rendered by LinkConditions)."""
    return replace(link, mtu=conditions.mtu, netem=conditions.netem_args())


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


def _devices(protocols: set[str], environment: Environment) -> list[str]:
    devices = [TUN]
    if environment.ppp and any(PROTOCOLS[p].needs_ppp for p in protocols):
        devices.append(PPP)
    return devices


def router_node(plan: LabPlan) -> NodeSpec:
    router, addresses, links = plan.router, plan.addresses, plan.topology.router.links
    uplink = "wan" if addresses.middle is None else "middle"  # double NAT: the upstream router's side
    node = NodeSpec(
        name=router.name,
        role="router",
        links=[
            conditioned(Link("lan", router.lan_if, f"{addresses.router_lan}/{addresses.lan.prefixlen}"), links.lan),
            conditioned(Link(uplink, router.wan_if, f"{addresses.router_wan}/{addresses.router_uplink.prefixlen}"), links.wan),
        ],
        routes=[] if addresses.upstream_lan is None else [f"default via {addresses.upstream_lan} dev {router.wan_if}"],
        sysctls=dict(router.sysctls),
        files=[NodeFile(f"{CONF_DIR}/rules.v4", render_ruleset(router))],
        setup=[f"vpnlab_iptables_restore {CONF_DIR}/rules.v4"],
    )
    tunnels = plan.tunnels_of(router.name)  # the router as a VPN client (lab.router.dialing)
    if tunnels:
        node.devices = _devices({ctx.tunnel.protocol for ctx in tunnels}, plan.environment)
        node.setup.append(SYSLOGD)
        for ctx in tunnels:
            node.files += PROTOCOLS[ctx.tunnel.protocol].client_files(ctx) + tunnel_files(ctx)
        node.files = _dedupe(node.files)
    return node


def upstream_node(plan: LabPlan, upstream: RouterPlan) -> NodeSpec:
    """The upstream router (double NAT): the router image and rules, its lan0 on the middle
    segment, its wan0 on the WAN; a route back to the LAN when the router routes it un-NATed."""
    addresses, section = plan.addresses, plan.topology.upstream
    assert addresses.middle is not None and addresses.upstream_lan is not None and section is not None
    links = section.links
    routes = [] if plan.router.masquerades else [f"{addresses.lan} via {addresses.router_wan} dev {upstream.lan_if}"]
    return NodeSpec(
        name=upstream.name,
        role="router",
        links=[
            conditioned(Link("middle", upstream.lan_if, f"{addresses.upstream_lan}/{addresses.middle.prefixlen}"), links.lan),
            conditioned(Link("wan", upstream.wan_if, f"{addresses.upstream_wan}/{addresses.wan.prefixlen}"), links.wan),
        ],
        routes=routes,
        sysctls=dict(upstream.sysctls),
        files=[NodeFile(f"{CONF_DIR}/rules.v4", render_ruleset(upstream))],
        setup=[f"vpnlab_iptables_restore {CONF_DIR}/rules.v4"],
    )


def server_node(plan: LabPlan, name: str) -> NodeSpec:
    server = plan.topology.server(name)
    ctx = ServerContext(plan.topology, plan.addresses, name, plan.secrets, plan.environment)
    node = NodeSpec(
        name=name,
        role="server",
        links=[conditioned(Link("wan", "eth0", f"{plan.addresses.servers[name]}/{plan.addresses.wan.prefixlen}"), server.link)],
        routes=server_routes(plan),
        devices=_devices(set(server.protocols), plan.environment),
    )
    for proto_name in server.protocols:
        proto = PROTOCOLS[proto_name]
        node.files += proto.server_files(ctx)
        node.setup += proto.server_start(ctx)
    node.files = _dedupe(node.files)
    return node


def server_routes(plan: LabPlan) -> list[str]:
    """Without NAT the clients' packets arrive from LAN addresses: a server needs a route back
    to the LAN through the router's WAN address, as an ISP routes a customer's prefix
    (without it every reply fails with "Network is unreachable"). With NAT it needs none.
    Under double NAT the WAN's gateway back is the upstream router, for whatever it forwards
    un-NATed: the middle segment, and the LAN too when neither router translates it."""
    addresses = plan.addresses
    if plan.upstream is not None and addresses.middle is not None:
        if plan.upstream.masquerades:
            return []
        routed = [addresses.middle] + ([] if plan.router.masquerades else [addresses.lan])
        return [f"{net} via {addresses.upstream_wan} dev eth0" for net in routed]
    if plan.router.masquerades:
        return []
    return [f"{plan.addresses.lan} via {plan.addresses.router_wan} dev eth0"]


def client_node(plan: LabPlan, name: str) -> NodeSpec:
    tunnels = plan.tunnels_of(name)
    link = Link("lan", "eth0", f"{plan.addresses.clients[name]}/{plan.addresses.lan.prefixlen}")
    node = NodeSpec(
        name=name,
        role="client",
        links=[conditioned(link, plan.topology.client(name).link)],
        routes=[f"default via {plan.addresses.router_lan} dev eth0"],
        devices=_devices({ctx.tunnel.protocol for ctx in tunnels}, plan.environment),
    )
    for ctx in tunnels:
        node.files += PROTOCOLS[ctx.tunnel.protocol].client_files(ctx) + tunnel_files(ctx)
    node.files = _dedupe(node.files)
    return node


STUN_PORT, STUN_ALT_PORT = 3478, 3479


def stun_command(primary: str, alternate: str) -> str:
    """coturn as a plain RFC 5780 STUN server: both addresses, both ports, no TURN, no auth,
    no TLS/DTLS/TCP listeners, no telnet CLI, no config file; logs under the lab's log dir."""
    return (
        f"turnserver -n --stun-only --no-cli --no-tls --no-dtls --no-tcp --log-binding"
        f" --listening-ip {primary} --listening-ip {alternate}"
        f" --listening-port {STUN_PORT} --alt-listening-port {STUN_ALT_PORT}"
        f" --log-file {LOG_DIR}/turnserver.log --simple-log --no-stdout-log"
        f" --pidfile {RUN_DIR}/turnserver.pid -o </dev/null >/dev/null 2>&1"
    )


def stun_node(plan: LabPlan) -> NodeSpec:
    """The NAT probe's STUN server on the WAN (``nat_probe: true``): the server image, two WAN
    addresses (RFC 5780's primary and alternate) on one interface."""
    primary, alternate = plan.stun_addresses
    prefix = plan.addresses.wan.prefixlen
    return NodeSpec(
        name=STUN_NODE,
        role="server",
        links=[Link("wan", "eth0", f"{primary}/{prefix}", secondary=(f"{alternate}/{prefix}",))],
        routes=server_routes(plan),  # a routed router forwards the LAN's own addresses: the way back goes through it
        setup=[stun_command(str(primary), str(alternate))],
    )


def _dedupe(files: list[NodeFile]) -> list[NodeFile]:
    by_path: dict[str, NodeFile] = {}
    for f in files:
        by_path[f.path] = f
    return list(by_path.values())
