"""PPTP: pptpd on the server, pptp-linux with pppd on the client (TCP 1723 control, GRE data).

MS-CHAPv2 with a password made per lab; MPPE-128 required where the kernel
has ppp_mppe (the log says which). Through a NAT router PPTP needs the pptp
conntrack helper: without it the server's GRE is not matched to the client's
and dies at the router, so the diagnosis reads the router's conntrack and
counters to say that in words.
"""

from __future__ import annotations

from lab.protocols.base import CONF_DIR, LOG_DIR, RUN_DIR, Flow, NodeFile, ServerContext, TunnelContext
from lab.protocols.ppp import COMMON_OPTIONS, PppProtocol, chap_secrets, common_options, ppp_facts, server_name
from lab.render import render

PORT = 1723
FILES = f"{CONF_DIR}/pptp"
MPPE_SCRIPT = f"{FILES}/mppe.sh"
MPPE_OPTIONS = f"{RUN_DIR}/pptp-mppe.options"
SYSLOG = f"{LOG_DIR}/syslog"


class Pptp(PppProtocol):
    name = "pptp"
    octet = 103
    deadline = 20.0
    flows = (Flow("tcp", PORT), Flow("gre"))
    family = "pptp"
    interface_prefix = "pptp"

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        subnet = ctx.plan.tunnel_subnet(self.octet, ctx.server)
        local = self.server_tunnel_address(ctx.plan, ctx.server)
        conf = render(
            "pptp/pptpd.conf.j2",
            options=f"{FILES}/server.options",
            listen=ctx.wan_address,
            local_ip=local,
            remote_range=f"{local + 1}-{subnet.broadcast_address.packed[-1] - 1}",
        )
        options = render(
            "pptp/server.options.j2",
            name=server_name(ctx.server, self.name),
            common=COMMON_OPTIONS,
            mppe_script=MPPE_SCRIPT,
            mppe_options=MPPE_OPTIONS,
            log=self.server_log(),
        )
        return [
            NodeFile(f"{FILES}/pptpd.conf", conf),
            NodeFile(f"{FILES}/server.options", options),
            self._mppe_script(),
            common_options(),
            chap_secrets(ctx.topology, ctx.secrets, ctx.server),
        ]

    def server_start(self, ctx: ServerContext) -> list[str]:
        log = self.server_log()
        return [
            f"sh {MPPE_SCRIPT} {log}",
            f"pptpd -c {FILES}/pptpd.conf -p {RUN_DIR}/pptpd.pid </dev/null >>{log} 2>&1",
        ]

    def client_files(self, ctx: TunnelContext) -> list[NodeFile]:
        server = ctx.tunnel.server
        options = render(
            "pptp/client.options.j2",
            server=server,
            server_wan=ctx.server_wan,
            user=ctx.tunnel.client,
            remotename=server_name(server, self.name),
            iface=self.client_interface(ctx),
            common=COMMON_OPTIONS,
            mppe_script=MPPE_SCRIPT,
            mppe_options=MPPE_OPTIONS,
            log=ctx.log_path,
        )
        start = render("pptp/start-client.sh.j2", mppe_script=MPPE_SCRIPT)
        return [
            NodeFile(f"{FILES}/{server}.options", options),
            NodeFile(f"{FILES}/start-client.sh", start, 0o755),
            self._mppe_script(),
            common_options(),
            chap_secrets(ctx.topology, ctx.secrets, ctx.tunnel.client),
        ]

    def client_start(self, ctx: TunnelContext) -> list[str]:
        server = ctx.tunnel.server
        return [f"sh {FILES}/start-client.sh {FILES}/{server}.options {self.pidfile(server)} {ctx.log_path}"]

    def still_trying(self, ctx: TunnelContext) -> tuple[str, str]:
        # pppd exits once LCP times out: the verdict need not wait for the deadline.
        return "pppd", f"kill -0 $(cat {self.pidfile(ctx.tunnel.server)}) 2>/dev/null"

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        # pptp-linux logs only to syslog (the node's busybox syslogd keeps it)
        return {**super().client_evidence(ctx), "syslog": f"grep 'pptp\\[' {SYSLOG} | tail -n 15"}

    def server_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        return {
            "log": f"tail -n 25 {self.server_log()}",
            "syslog": f"grep -E 'pptpd\\[|pptpctrl\\[' {SYSLOG} | tail -n 15",
        }

    def diagnose(self, evidence: dict[str, str]) -> list[str]:
        log = evidence.get("client log", "")
        conntrack = evidence.get("router conntrack", "").splitlines()
        control = [line for line in conntrack if line.startswith("tcp") and f"dport={PORT} " in line + " "]
        facts = []
        if "Outgoing call established" in evidence.get("syslog", ""):
            facts.append(f"TCP {PORT} established and the call set up")
        elif any("ASSURED" in line for line in control):
            facts.append(f"TCP {PORT} established")
        elif control:
            facts.append(f"TCP {PORT} never answered")
        else:
            facts.append(f"no TCP {PORT} connection through the router")
        gre_unanswered = any(line.startswith("gre") and "[UNREPLIED]" in line for line in conntrack)
        if gre_unanswered and any("ASSURED" in line for line in control):
            facts.append(_gre_not_translated(evidence.get("router counters", "")))
        server_log = evidence.get("server log", "")
        if "rcvd [LCP ConfReq" in server_log and "rcvd [LCP" not in log:
            facts.append("the server's pppd got the client's LCP requests, the client none of the server's")
        facts += ppp_facts(evidence)
        milestones = evidence.get("pppd", "")
        if "MPPE 128-bit" in milestones:
            facts.append("MPPE-128 on")
        elif "MPPE not offered" in milestones:
            facts.append("no MPPE (this kernel has no ppp_mppe)")
        if any("helper=pptp" in line for line in control):
            facts.append("the router's pptp helper tracks the call (helper=pptp)")
        elif control:
            facts.append("no pptp helper on the router (no helper=pptp in its conntrack)")
        return facts

    @staticmethod
    def _mppe_script() -> NodeFile:
        return NodeFile(MPPE_SCRIPT, render("pptp/mppe.sh.j2", mppe_options=MPPE_OPTIONS), 0o755)


def _gre_not_translated(counters: str) -> str:
    """The server's GRE reached the router but was not tied to the client's call: it was
    addressed to the router itself and dropped there (an unconfirmed conntrack entry is
    never listed, so the INPUT drop counter is what shows it)."""
    fact = "GRE from the server not translated back (the client's GRE entry in router conntrack stays [UNREPLIED]"
    rule = "vpnlab: input gre from wan not tied to a call"
    for line in counters.splitlines():
        if line.startswith(f"INPUT: {rule}: "):
            fact += f"; rule '{rule}' dropped {line.rsplit(': ', 1)[1]} packets sent to the router itself"
    return fact + ")"
