"""L2TP: xl2tpd with pppd on both sides over plain UDP 1701 (no IPsec: unencrypted by design).

The server's xl2tpd (LNS) hands out addresses from the tunnel subnet; each
client tunnel runs its own xl2tpd (LAC) with its own UDP port, dialled
through its control pipe. pppd authenticates with MS-CHAPv2 and a password
made per lab. UDP needs no conntrack helper: NAT passes it like any UDP flow.
"""

from __future__ import annotations

from lab.protocols.base import CONF_DIR, RUN_DIR, Flow, NodeFile, ServerContext, TunnelContext
from lab.protocols.ppp import COMMON_OPTIONS, PppProtocol, chap_secrets, common_options, ppp_facts, server_name
from lab.render import render

PORT = 1701
FILES = f"{CONF_DIR}/l2tp"


class L2tp(PppProtocol):
    name = "l2tp"
    octet = 104
    deadline = 20.0
    flows = (Flow("udp", PORT),)
    family = "l2tp"
    interface_prefix = "l2tp"

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        subnet = ctx.plan.tunnel_subnet(self.octet, ctx.server)
        local = self.server_tunnel_address(ctx.plan, ctx.server)
        name = server_name(ctx.server, self.name)
        conf = render(
            "l2tp/xl2tpd-server.conf.j2",
            listen=ctx.wan_address,
            port=PORT,
            local_ip=local,
            ip_range=f"{local + 1}-{subnet.broadcast_address - 1}",
            name=name,
            options=f"{FILES}/server.options",
        )
        options = render("l2tp/server.options.j2", name=name, common=COMMON_OPTIONS, log=self.server_log())
        return [
            NodeFile(f"{FILES}/xl2tpd.conf", conf),
            NodeFile(f"{FILES}/server.options", options),
            common_options(),
            chap_secrets(ctx.topology, ctx.secrets, ctx.server),
        ]

    def server_start(self, ctx: ServerContext) -> list[str]:
        # -D keeps xl2tpd in the foreground with its log on stderr: into the server log, not syslog
        return [
            f"xl2tpd -D -c {FILES}/xl2tpd.conf -C {RUN_DIR}/xl2tpd-server.control -p {RUN_DIR}/xl2tpd-server.pid "
            f"</dev/null >>{self.server_log()} 2>&1 &"
        ]

    def client_files(self, ctx: TunnelContext) -> list[NodeFile]:
        server = ctx.tunnel.server
        conf = render(
            "l2tp/xl2tpd-client.conf.j2",
            server=server,
            server_wan=ctx.server_wan,
            port=PORT + ctx.plan.server_index[server],
            options=f"{FILES}/{server}.options",
        )
        options = render(
            "l2tp/client.options.j2",
            server=server,
            user=ctx.tunnel.client,
            remotename=server_name(server, self.name),
            iface=self.client_interface(ctx),
            common=COMMON_OPTIONS,
            log=ctx.log_path,
        )
        return [
            NodeFile(f"{FILES}/{server}.conf", conf),
            NodeFile(f"{FILES}/{server}.options", options),
            NodeFile(f"{FILES}/connect.sh", render("l2tp/connect.sh.j2"), 0o755),
            common_options(),
            chap_secrets(ctx.topology, ctx.secrets, ctx.tunnel.client),
        ]

    def client_start(self, ctx: TunnelContext) -> list[str]:
        server = ctx.tunnel.server
        return [
            f"sh {FILES}/connect.sh {FILES}/{server}.conf {RUN_DIR}/xl2tpd-{server}.control "
            f"{self.pidfile(server)} {ctx.log_path} {server} {self.client_interface(ctx)}"
        ]

    def still_trying(self, ctx: TunnelContext) -> tuple[str, str]:
        return "xl2tpd", f"kill -0 $(cat {self.pidfile(ctx.tunnel.server)}) 2>/dev/null"

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        # xl2tpd's own lines, without the pppd command line it logs one word per line
        xl2tpd = f"grep '^xl2tpd' {ctx.log_path} | grep -v '\\]: \"' | tail -n 8"
        return {**super().client_evidence(ctx), "xl2tpd": xl2tpd}

    def server_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        return {"log": f"grep -v '\\]: \"' {self.server_log()} | tail -n 25"}

    def diagnose(self, evidence: dict[str, str]) -> list[str]:
        xl2tpd = evidence.get("xl2tpd", "")
        facts = []
        if "Connection established to" in xl2tpd:
            facts.append(f"L2TP control connection (UDP {PORT}) established")
        elif "Connecting to host" in xl2tpd:
            facts.append(f"xl2tpd got no answer from the server on UDP {PORT}")
        if "Call established" in xl2tpd:
            facts.append("L2TP call established")
        return facts + ppp_facts(evidence)
