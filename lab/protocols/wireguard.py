"""WireGuard: kernel module where the kernel has it, wireguard-go otherwise.

Keys are made per lab. One server interface carries every client as a peer
(AllowedIPs = the client's /32); each client has one interface per server.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from lab.kernel.needs import Alternative, Need
from lab.protocols.base import CONF_DIR, LOG_DIR, Flow, Listen, NodeFile, Protocol, ServerContext, TunnelContext
from lab.protocols.options import Options, mtu_problem, number_problem
from lab.render import render

if TYPE_CHECKING:  # pragma: no cover
    from lab.check.evidence import Evidence

PORT = 51820
# The client's PersistentKeepalive (seconds) unless its tunnel says ``options: {keepalive: N}``.
DEFAULT_KEEPALIVE = 25
KEEPALIVE_RANGE = (1, 65535)


class WireGuard(Protocol):
    name = "wireguard"
    tunnel_net = IPv4Network("10.100.0.0/16")
    interface_prefix = "wg"
    deadline = 10.0
    flows = (Flow("udp", PORT),)
    listens = (Listen("udp", PORT),)
    kernel_needs = (
        Need(Alternative("wireguard", "kernel WireGuard"),
             Alternative("tun", "wireguard-go (userspace, no kernel WireGuard)")),
    )
    guest_modules = ("tun",)  # the UML guest's kernel has no WireGuard: wireguard-go

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        peers = [
            {
                "public_key": ctx.secrets.wireguard(t.client).public,
                "address": self.client_tunnel_address(ctx.plan, ctx.server, t.client),
            }
            for t in ctx.tunnels(self.name)
        ]
        conf = render(
            "wireguard/wg.conf.j2",
            private_key=ctx.secrets.wireguard(ctx.server).private,
            listen_port=PORT,
            peers=peers,
            endpoint=None,
        )
        return [NodeFile(f"{CONF_DIR}/wireguard/{self.server_interface()}.conf", conf, 0o600), self._up_script()]

    def server_start(self, ctx: ServerContext) -> list[str]:
        iface = self.server_interface()
        address = f"{self.server_tunnel_address(ctx.plan, ctx.server)}/24"
        return [f"sh {CONF_DIR}/wireguard/up.sh {iface} {CONF_DIR}/wireguard/{iface}.conf {address} >>{self.server_log()} 2>&1"]

    def client_files(self, ctx: TunnelContext) -> list[NodeFile]:
        iface = self.client_interface(ctx)
        conf = render(
            "wireguard/wg.conf.j2",
            private_key=ctx.secrets.wireguard(ctx.tunnel.client).private,
            listen_port=None,
            peers=[
                {
                    "public_key": ctx.secrets.wireguard(ctx.tunnel.server).public,
                    "address": self.server_tunnel_address(ctx.plan, ctx.tunnel.server),
                    "endpoint": f"{ctx.server_wan}:{PORT}",
                    "keepalive": ctx.tunnel.options.get("keepalive", DEFAULT_KEEPALIVE),
                }
            ],
            endpoint=True,
        )
        return [NodeFile(f"{CONF_DIR}/wireguard/{iface}.conf", conf, 0o600), self._up_script()]

    options = ("keepalive", "mtu")

    def option_problems(self, options: Options) -> dict[str, str]:
        return {
            **number_problem(options, "keepalive", "PersistentKeepalive seconds", KEEPALIVE_RANGE),
            **mtu_problem(options, "the client's wg interface MTU"),
        }

    def client_start(self, ctx: TunnelContext) -> list[str]:
        iface = self.client_interface(ctx)
        address = f"{self.client_tunnel_address(ctx.plan, ctx.tunnel.server, ctx.tunnel.client)}/24"
        start = [f"sh {CONF_DIR}/wireguard/up.sh {iface} {CONF_DIR}/wireguard/{iface}.conf {address} >>{ctx.log_path} 2>&1"]
        # 'MTU' is wg-quick's, not a 'wg setconf' key: set on the link once it exists
        mtu = ctx.tunnel.options.get("mtu")
        return start + ([f"ip link set dev {iface} mtu {mtu} >>{ctx.log_path} 2>&1"] if mtu is not None else [])

    def client_stop(self, ctx: TunnelContext) -> list[str]:
        # wireguard-go exits once its interface is deleted
        return [f"ip link del dev {self.client_interface(ctx)} 2>/dev/null"]

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        return {
            "wg show": f"wg show {self.client_interface(ctx)}",
            "implementation": f"grep '^vpnlab:' {ctx.log_path}",
        }

    def diagnose(self, evidence: Evidence) -> list[str]:
        show = evidence.client.get("wg show", "")
        facts = ["a WireGuard handshake completed" if "latest handshake" in show else "no WireGuard handshake completed"]
        if "wireguard-go" in evidence.client.get("implementation", ""):
            facts.append("wireguard-go (userspace: this kernel has no WireGuard)")
        return facts

    @staticmethod
    def _up_script() -> NodeFile:
        return NodeFile(f"{CONF_DIR}/wireguard/up.sh", render("wireguard/up.sh.j2", log_dir=LOG_DIR), 0o755)
