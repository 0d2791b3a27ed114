"""PPTP: pptpd on the server, pptp-linux with pppd on the client (TCP 1723 control, GRE data).

MS-CHAPv2 with a password made per lab; MPPE-128 required where the kernel
has ppp_mppe (the log says which). Through a stateful router PPTP needs the pptp
conntrack helper, NAT or not: without it the server's GRE is not matched to the
client's call and dies at the router (addressed to the router itself behind NAT;
as new traffic from the WAN without NAT), so the diagnosis reads the router's
conntrack and counters to say which, in words.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from lab.kernel.needs import Alternative, Need
from lab.protocols.base import CONF_DIR, LOG_DIR, RUN_DIR, Flow, Listen, NodeFile, ServerContext, TunnelContext
from lab.protocols.ppp import (
    COMMON_OPTIONS,
    PPP_MODULES,
    PppProtocol,
    chap_secrets,
    common_options,
    lcp_facts,
    mppe_facts,
    ppp_facts,
    server_name,
)
from lab.render import render
from lab.router.comments import FORWARD_DEFAULT_DROP, INPUT_GRE_NOT_TIED

if TYPE_CHECKING:  # pragma: no cover
    from lab.check.evidence import Evidence, RouterEvidence

PORT = 1723
FILES = f"{CONF_DIR}/pptp"
MPPE_SCRIPT = f"{FILES}/mppe.sh"
MPPE_OPTIONS = f"{RUN_DIR}/pptp-mppe.options"
SYSLOG = f"{LOG_DIR}/syslog"


class Pptp(PppProtocol):
    name = "pptp"
    tunnel_net = IPv4Network("10.103.0.0/16")
    interface_prefix = "pptp"
    deadline = 20.0
    flows = (Flow("tcp", PORT), Flow("gre"))
    family = "pptp"
    listens = (Listen("tcp", PORT),)
    kernel_needs = (
        Need(Alternative("ppp", "kernel PPP (GRE in user space)")),
        Need(Alternative("pptp_helper", "pptp conntrack helper on the router")),
    )
    kernel_recommended = (
        ("nf_nat_pptp", "two LAN clients through one NAT need its call-ID rewriting; a container cannot "
                        "load it: run 'sudo modprobe nf_nat_pptp' on the engine's host"),
    )
    guest_modules = (*PPP_MODULES, "ppp_mppe", "pptp")

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        subnet = self.tunnel_subnet(ctx.plan, ctx.server)
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
            mtu=ctx.tunnel.options.get("mtu"),
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

    def client_stop(self, ctx: TunnelContext) -> list[str]:
        return [f"stop_pid {self.pidfile(ctx.tunnel.server)} {self.client_interface(ctx)}"]

    def client_shared_logs(self, ctx: TunnelContext) -> tuple[str, ...]:
        return (SYSLOG,)

    def still_trying(self, ctx: TunnelContext) -> tuple[str, str]:
        # pppd exits once LCP times out: the verdict need not wait for the deadline.
        return "pppd", f"alive {self.pidfile(ctx.tunnel.server)}"

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        # pptp-linux logs only to syslog (the node's busybox syslogd keeps it)
        return {**super().client_evidence(ctx), "syslog": f"{ctx.since_attempt(SYSLOG)} | grep 'pptp\\[' | tail -n 15"}

    def server_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        return {
            "log": f"tail -n 25 {self.server_log()}",
            "syslog": f"grep -E 'pptpd\\[|pptpctrl\\[' {SYSLOG} | tail -n 15",
        }

    def diagnose(self, evidence: Evidence) -> list[str]:
        client, router = evidence.client, evidence.router
        control = router.entries("tcp", PORT)
        facts = []
        if "Outgoing call established" in client.get("syslog", ""):
            facts.append(f"TCP {PORT} established and the call set up")
        elif any(e.assured for e in control):
            facts.append(f"TCP {PORT} established")
        elif control:
            facts.append(f"TCP {PORT} never answered")
        else:
            facts.append(f"no TCP {PORT} connection through the router")
        gre_unanswered = any(e.unreplied for e in router.entries("gre"))
        if gre_unanswered and any(e.assured for e in control):
            helper = any(e.helper == "pptp" for e in control)
            if evidence.router_dials:
                facts.append(_gre_not_tied_to_own_call(router, helper))
            elif any(e.source_translated for e in control):
                facts.append(_gre_not_translated(router))
            else:
                facts.append(_gre_not_matched(router, helper))
        facts += lcp_facts(client.get("client log", ""), evidence.server.get("log", ""))
        facts += ppp_facts(client)
        facts += mppe_facts(client.get("pppd", ""))
        if any(e.helper == "pptp" for e in control):
            facts.append("the router's pptp helper tracks the call (helper=pptp)")
        elif control:
            facts.append("no pptp helper on the router (no helper=pptp in its conntrack)")
        return facts

    @staticmethod
    def _mppe_script() -> NodeFile:
        return NodeFile(MPPE_SCRIPT, render("pptp/mppe.sh.j2", mppe_options=MPPE_OPTIONS), 0o755)


def _gre_not_matched(router: RouterEvidence, helper: bool) -> str:
    """Without NAT nothing needs translating, yet a stateful router still has to tie the
    server's GRE (keyed by the client's call ID) to the call: only the pptp helper knows the
    call IDs, so without it the GRE is new traffic from the WAN, dropped by the forward chain."""
    why = "the pptp helper is attached but did not tie it" if helper else "no pptp helper"
    fact = (
        f"GRE from the server not matched to a call ({why}): nothing is translated (no NAT), "
        "but the client's GRE entry in router conntrack stays [UNREPLIED]"
    )
    dropped = router.packets(FORWARD_DEFAULT_DROP, chain="FORWARD")
    if dropped is not None:
        fact += f"; rule '{FORWARD_DEFAULT_DROP}' (FORWARD) dropped {dropped} packets"
    return fact


def _gre_not_translated(router: RouterEvidence) -> str:
    """The server's GRE reached the router but was not tied to the client's call: it was
    addressed to the router itself and dropped there (an unconfirmed conntrack entry is
    never listed, so the INPUT drop counter is what shows it)."""
    fact = "GRE from the server not translated back (the client's GRE entry in router conntrack stays [UNREPLIED]"
    dropped = router.packets(INPUT_GRE_NOT_TIED, chain="INPUT")
    if dropped is not None:
        fact += f"; rule '{INPUT_GRE_NOT_TIED}' dropped {dropped} packets sent to the router itself"
    return fact + ")"


def _gre_not_tied_to_own_call(router: RouterEvidence, helper: bool) -> str:
    """The router dialled itself: its call's TCP 1723 left through the raw OUTPUT chain, where a
    helper attached for forwarded traffic only (raw PREROUTING) never sees it. The server's GRE
    then comes to the router as new traffic from the WAN and dies at INPUT (OpenWrt's bug)."""
    why = ("the pptp helper is attached but did not tie it" if helper
           else "no pptp helper on the router's own TCP 1723 connection")
    fact = (f"GRE from the server not tied to the router's own call ({why}): the router's GRE entry in "
            "its conntrack stays [UNREPLIED]")
    dropped = router.packets(INPUT_GRE_NOT_TIED, chain="INPUT")
    if dropped is not None:
        fact += f"; rule '{INPUT_GRE_NOT_TIED}' (INPUT) dropped {dropped} packets"
    return fact
