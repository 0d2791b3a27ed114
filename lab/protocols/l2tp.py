"""L2TP: xl2tpd with pppd on both sides over plain UDP 1701 (no IPsec: unencrypted by design).

The server's xl2tpd (LNS) hands out addresses from the tunnel subnet; each
client tunnel runs its own xl2tpd (LAC) with its own UDP port, dialled
through its control pipe. pppd authenticates with MS-CHAPv2 and a password
made per lab. UDP needs no conntrack helper: NAT passes it like any UDP flow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ipaddress import IPv4Network

from lab.kernel.needs import Alternative, Need
from lab.protocols.base import CONF_DIR, RUN_DIR, Flow, Listen, NodeFile, ServerContext, TunnelContext
from lab.protocols.ppp import COMMON_OPTIONS, PPP_MODULES, PppProtocol, chap_secrets, common_options, ppp_facts, server_name
from lab.render import render

if TYPE_CHECKING:  # pragma: no cover
    from lab.check.evidence import Evidence

PORT = 1701


class L2tp(PppProtocol):
    name = "l2tp"
    tunnel_net = IPv4Network("10.104.0.0/16")
    interface_prefix = "l2tp"
    deadline = 20.0
    flows = (Flow("udp", PORT),)
    family = "l2tp"
    listens = (Listen("udp", PORT),)  # the server's xl2tpd
    kernel_needs = (Need(Alternative("ppp", "kernel PPP")), Need(Alternative("l2tp", "kernel L2TP")))
    guest_modules = (*PPP_MODULES, "l2tp_ppp")
    # what differs for L2TP/IPsec (lab.protocols.l2tp_ipsec), which builds on this class
    server_conf_template: ClassVar[str] = "l2tp/xl2tpd-server.conf.j2"

    @property
    def files_dir(self) -> str:
        """Where this protocol's xl2tpd and pppd files live on a node."""
        return f"{CONF_DIR}/{self.name}"

    def control_path(self, server: str) -> str:
        """The control pipe of the client's xl2tpd for this server."""
        return f"{RUN_DIR}/xl2tpd-{server}.control"

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        subnet = self.tunnel_subnet(ctx.plan, ctx.server)
        local = self.server_tunnel_address(ctx.plan, ctx.server)
        name = server_name(ctx.server, self.name)
        files = self.files_dir
        conf = render(
            self.server_conf_template,
            listen=ctx.wan_address,
            port=PORT,
            local_ip=local,
            ip_range=f"{local + 1}-{subnet.broadcast_address - 1}",
            name=name,
            options=f"{files}/server.options",
        )
        options = render("l2tp/server.options.j2", name=name, common=COMMON_OPTIONS, log=self.server_log())
        return [
            NodeFile(f"{files}/xl2tpd.conf", conf),
            NodeFile(f"{files}/server.options", options),
            common_options(),
            chap_secrets(ctx.topology, ctx.secrets, ctx.server),
        ]

    def server_start(self, ctx: ServerContext) -> list[str]:
        # -D keeps xl2tpd in the foreground with its log on stderr: into the server log, not syslog
        return [
            f"xl2tpd -D -c {self.files_dir}/xl2tpd.conf -C {RUN_DIR}/xl2tpd-server.control "
            f"-p {RUN_DIR}/xl2tpd-server.pid </dev/null >>{self.server_log()} 2>&1 &"
        ]

    def client_files(self, ctx: TunnelContext) -> list[NodeFile]:
        server, files = ctx.tunnel.server, self.files_dir
        conf = render(
            "l2tp/xl2tpd-client.conf.j2",
            server=server,
            server_wan=ctx.server_wan,
            port=PORT + ctx.plan.server_index[server],
            options=f"{files}/{server}.options",
        )
        options = render(
            "l2tp/client.options.j2",
            server=server,
            user=ctx.tunnel.client,
            remotename=server_name(server, self.name),
            iface=self.client_interface(ctx),
            common=COMMON_OPTIONS,
            mtu=ctx.tunnel.options.get("mtu"),
            log=ctx.log_path,
        )
        return [
            NodeFile(f"{files}/{server}.conf", conf),
            NodeFile(f"{files}/{server}.options", options),
            NodeFile(f"{files}/connect.sh", render("l2tp/connect.sh.j2"), 0o755),
            common_options(),
            chap_secrets(ctx.topology, ctx.secrets, ctx.tunnel.client),
        ]

    def client_start(self, ctx: TunnelContext) -> list[str]:
        return [f"sh {self.files_dir}/connect.sh {self.dial_arguments(ctx)}"]

    def dial_arguments(self, ctx: TunnelContext) -> str:
        """connect.sh's arguments: CONF CONTROL PIDFILE LOG LAC IFACE."""
        server, files = ctx.tunnel.server, self.files_dir
        return (
            f"{files}/{server}.conf {self.control_path(server)} "
            f"{self.pidfile(server)} {ctx.log_path} {server} {self.client_interface(ctx)}"
        )

    def client_stop(self, ctx: TunnelContext) -> list[str]:
        # xl2tpd's pppd hangs up on the way out and must release the interface name
        return [f"stop_pid {self.pidfile(ctx.tunnel.server)} {self.client_interface(ctx)}"]

    def still_trying(self, ctx: TunnelContext) -> tuple[str, str]:
        return "xl2tpd", f"alive {self.pidfile(ctx.tunnel.server)}"

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        # xl2tpd's own lines, without the pppd command line it logs one word per line
        xl2tpd = f"grep '^xl2tpd' {ctx.log_path} | grep -v '\\]: \"' | tail -n 8"
        return {**super().client_evidence(ctx), "xl2tpd": xl2tpd}

    def server_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        return {"log": f"grep -v '\\]: \"' {self.server_log()} | tail -n 25"}

    def diagnose(self, evidence: Evidence) -> list[str]:
        xl2tpd = evidence.client.get("xl2tpd", "")
        facts = []
        if "Connection established to" in xl2tpd:
            facts.append(f"L2TP control connection (UDP {PORT}) established")
        elif "Connecting to host" in xl2tpd:
            facts.append(f"xl2tpd got no answer from the server on UDP {PORT}")
        if "Call established" in xl2tpd:
            facts.append("L2TP call established")
        return facts + ppp_facts(evidence.client)
