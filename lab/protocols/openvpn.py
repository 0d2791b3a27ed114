"""OpenVPN over UDP and over TCP, with a PKI made per lab.

TLS mode with tls-crypt (no DH parameters: ECDHE); DCO off so the same
configuration runs on any kernel with TUN. The server owns .1 of its
subnet and pushes each client an address (topology subnet).
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from lab.kernel.needs import Alternative, Need
from lab.protocols.base import CONF_DIR, RUN_DIR, Flow, Listen, NodeFile, Protocol, ServerContext, TunnelContext
from lab.protocols.options import Options, mtu_problem, number_problem
from lab.render import render

if TYPE_CHECKING:  # pragma: no cover
    from lab.check.evidence import Evidence

PORT = 1194
FILES = f"{CONF_DIR}/openvpn"
# 'keepalive A B' (seconds): ping every A s, restart after B s without a packet from the peer
# (the server waits 2 B). vpnlab's default is 'keepalive 2 10'; a tunnel's
# 'options: {keepalive: A}' gives B = RESTART_FACTOR * A, the same ratio.
DEFAULT_KEEPALIVE = 2
RESTART_FACTOR = 5
KEEPALIVE_RANGE = (1, 3600)
# A tunnel's 'options: {port: N}' moves its server's port (every tunnel to one server agrees:
# lab.protocols.ports), e.g. TCP 443 through a network that lets only HTTPS out
PORT_RANGE = (1, 65535)


class OpenVpn(Protocol):
    transport: str  # "udp" or "tcp"
    kernel_needs = (Need(Alternative("tun", "TUN")),)
    guest_modules = ("tun",)

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        subnet = self.tunnel_subnet(ctx.plan, ctx.server)
        conf = render(
            "openvpn/server.conf.j2",
            transport=self.transport,
            iface=self.server_interface(),
            local=ctx.wan_address,
            port=self._server_port(ctx),
            keepalive=self._server_keepalive(ctx),
            default_keepalive=(DEFAULT_KEEPALIVE, RESTART_FACTOR * DEFAULT_KEEPALIVE),
            network=subnet.network_address,
            netmask=subnet.netmask,
            files=FILES,
            log=self.server_log(),
            pidfile=f"{RUN_DIR}/{self.name}-server.pid",
        )
        tls = ctx.secrets.tls(ctx.server, server=True, san_ips=(str(ctx.wan_address),))
        return [
            NodeFile(f"{FILES}/{self.name}-server.conf", conf),
            *self._pki_files(ctx.secrets.ca.cert_pem, tls.cert_pem, tls.key_pem, ctx.secrets.openvpn_tls_crypt(ctx.server), "server"),
        ]

    def server_start(self, ctx: ServerContext) -> list[str]:
        return [f"openvpn --config {FILES}/{self.name}-server.conf </dev/null >/dev/null 2>&1"]

    def client_files(self, ctx: TunnelContext) -> list[NodeFile]:
        server = ctx.tunnel.server
        conf = render(
            "openvpn/client.conf.j2",
            transport=self.transport,
            iface=self.client_interface(ctx),
            remote=ctx.server_wan,
            port=port_of(ctx.tunnel.options),
            keepalive=self._client_keepalive(ctx),
            mtu=ctx.tunnel.options.get("mtu"),
            server_name=server,
            files=FILES,
            server=server,
            log=ctx.log_path,
            pidfile=self.pidfile(server),
        )
        tls = ctx.secrets.tls(ctx.tunnel.client, server=False)
        return [
            NodeFile(f"{FILES}/{self.name}-{server}.conf", conf),
            *self._pki_files(
                ctx.secrets.ca.cert_pem, tls.cert_pem, tls.key_pem, ctx.secrets.openvpn_tls_crypt(server), server
            ),
        ]

    options = ("port", "keepalive", "mtu")

    def option_problems(self, options: Options) -> dict[str, str]:
        return {
            **number_problem(options, "port", f"the server's {self.transport.upper()} port", PORT_RANGE),
            **number_problem(options, "keepalive", "seconds between OpenVPN pings", KEEPALIVE_RANGE),
            **mtu_problem(options, "the client's tun-mtu"),
        }

    def tunnel_flows(self, options: Options) -> tuple[Flow, ...]:
        return (Flow(self.transport, port_of(options)),)

    def tunnel_listens(self, options: Options) -> tuple[Listen, ...]:
        return (Listen(self.transport, port_of(options)),)

    def _server_port(self, ctx: ServerContext) -> int:
        """The port of the server's daemon: its tunnels' (the topology's checks make them agree)."""
        return next((port_of(t.options) for t in ctx.tunnels(self.name)), PORT)

    def _server_keepalive(self, ctx: ServerContext) -> tuple[int, int] | None:
        """(ping, ping-restart) of the server when a tunnel to it sets ``keepalive``, else None
        (the default 'keepalive 2 10', pushed to every client). One daemon serves every client:
        it pings as often as the most eager one asks and gives a client up only after twice the
        longest ping-restart (OpenVPN's 2 B); the clients ping as their own tunnels say."""
        given = [t.options.get("keepalive") for t in ctx.tunnels(self.name)]
        if all(value is None for value in given):
            return None
        pings = [int(value) if value is not None else DEFAULT_KEEPALIVE for value in given]
        return min(pings), 2 * RESTART_FACTOR * max(pings)

    @staticmethod
    def _client_keepalive(ctx: TunnelContext) -> tuple[int, int] | None:
        keepalive = ctx.tunnel.options.get("keepalive")
        return (int(keepalive), int(keepalive) * RESTART_FACTOR) if keepalive is not None else None

    def pidfile(self, server: str) -> str:
        return f"{RUN_DIR}/{self.name}-{server}.pid"

    def client_stop(self, ctx: TunnelContext) -> list[str]:
        return [f"stop_pid {self.pidfile(ctx.tunnel.server)} {self.client_interface(ctx)}"]

    def client_start(self, ctx: TunnelContext) -> list[str]:
        return [f"openvpn --config {FILES}/{self.name}-{ctx.tunnel.server}.conf </dev/null >/dev/null 2>&1"]

    def diagnose(self, evidence: Evidence) -> list[str]:
        log = evidence.client.get("client log", "")
        facts = []
        if "Initialization Sequence Completed" in log:
            facts.append("OpenVPN reported 'Initialization Sequence Completed'")
        elif "TLS key negotiation failed" in log or "TLS Error" in log:
            facts.append("OpenVPN TLS negotiation failed")
        elif "Server poll timeout" in log:
            facts.append("OpenVPN got no answer from the server (server poll timeout)")
        elif "Connection refused" in log or "Connection timed out" in log:
            facts.append("OpenVPN could not open its TCP connection")
        elif log:
            facts.append("OpenVPN never completed its TLS handshake")
        return facts

    @staticmethod
    def _pki_files(ca: str, cert: str, key: str, tls_crypt: str, peer: str) -> list[NodeFile]:
        return [
            NodeFile(f"{FILES}/ca.crt", ca),
            NodeFile(f"{FILES}/{peer}.crt" if peer == "server" else f"{FILES}/client.crt", cert),
            NodeFile(f"{FILES}/{peer}.key" if peer == "server" else f"{FILES}/client.key", key, 0o600),
            NodeFile(f"{FILES}/tls-crypt-{peer}.key", tls_crypt, 0o600),
        ]


def port_of(options: Options) -> int:
    """The server port a tunnel's options name (validated: a whole number), else 1194."""
    return int(options.get("port", PORT))


class OpenVpnUdp(OpenVpn):
    name = "openvpn-udp"
    tunnel_net = IPv4Network("10.101.0.0/16")
    transport = "udp"
    flows = (Flow("udp", PORT),)
    listens = (Listen("udp", PORT),)
    interface_prefix = "ovu"


class OpenVpnTcp(OpenVpn):
    name = "openvpn-tcp"
    tunnel_net = IPv4Network("10.102.0.0/16")
    transport = "tcp"
    flows = (Flow("tcp", PORT),)
    listens = (Listen("tcp", PORT),)
    interface_prefix = "ovt"

