"""What the PPP protocols (PPTP, L2TP) share: pppd options, CHAP secrets, "pppd gave up".

pppd reads its secrets from one fixed file (/etc/ppp/chap-secrets), so every
PPP protocol of a node renders that file whole, from all of the node's PPP
tunnels: the copies are identical and the node keeps one.
"""

from __future__ import annotations

from collections.abc import Mapping

from lab.credentials import LabSecrets
from lab.protocols.base import CONF_DIR, RUN_DIR, NodeFile, Protocol, TunnelContext
from lab.protocols.options import Options, mtu_problem
from lab.render import render
from lab.topology.model import Topology, Tunnel

PPP_DIR = f"{CONF_DIR}/ppp"
COMMON_OPTIONS = f"{PPP_DIR}/common.options"
CHAP_SECRETS = "/etc/ppp/chap-secrets"
# pppd gives up after LCP_RESTART * LCP_MAX_CONFIGURE seconds without an answer: 14 s,
# inside the 20 s deadline even with a second or two of TCP/L2TP set-up before LCP.
LCP_RESTART = 2
LCP_MAX_CONFIGURE = 7
# kernel modules every PPP protocol needs in a User-Mode Linux guest
PPP_MODULES = ("ppp_generic", "ppp_async", "ppp_deflate")
PPPD_MILESTONES = "^vpnlab:|LCP: timeout|authentication (succeeded|failed)|MPPE|IP address|Connection terminated"


def server_name(server: str, protocol: str) -> str:
    """The name a server's pppd authenticates as (chap-secrets' server column)."""
    return f"{server}-{protocol}"


def password(secrets: LabSecrets, tunnel: Tunnel) -> str:
    return secrets.password(f"{tunnel.protocol} {tunnel.client}@{tunnel.server}")


def chap_secrets(topology: Topology, secrets: LabSecrets, node: str) -> NodeFile:
    """One line per PPP tunnel this node ends (as client or server)."""
    from lab.protocols import PROTOCOLS  # the registry imports this module

    lines = [
        {"client": t.client, "server": server_name(t.server, t.protocol), "password": password(secrets, t)}
        for t in topology.tunnels
        if PROTOCOLS[t.protocol].needs_ppp and node in (t.client, t.server)
    ]
    return NodeFile(CHAP_SECRETS, render("ppp/chap-secrets.j2", secrets=lines), 0o600)


def common_options() -> NodeFile:
    return NodeFile(
        COMMON_OPTIONS,
        render("ppp/common.options.j2", lcp_restart=LCP_RESTART, lcp_max_configure=LCP_MAX_CONFIGURE),
    )


class PppProtocol(Protocol):
    needs_ppp = True
    options = ("mtu",)

    def option_problems(self, options: Options) -> dict[str, str]:
        # 'mtu: N' becomes the client pppd's 'mtu N' and 'mru N' (what it sends and asks for)
        return mtu_problem(options, "the client pppd's mtu and mru")

    def pidfile(self, server: str) -> str:
        return f"{RUN_DIR}/{self.name}-{server}.pid"

    def still_trying(self, ctx: TunnelContext) -> tuple[str, str]:
        """(daemon, shell test) for the up-check: the test fails once the client's daemon has exited."""
        raise NotImplementedError

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        log = ctx.log_path
        return {
            # the authentication protocol the server asked for, from the LCP Config-Request pppd logged
            "auth": f"grep -m 1 -o 'rcvd \\[LCP ConfReq.*<auth [^>]*>' {log}",
            # pppd's milestones, which its debug lines push out of the log's tail
            "pppd": f"grep -E '{PPPD_MILESTONES}' {log} | tail -n 10",
        }


def ppp_facts(client: Mapping[str, str]) -> list[str]:
    """What the client's pppd milestones ('pppd') and auth request ('auth') say about LCP and
    authentication."""
    log = client.get("pppd", "")
    facts = []
    if "LCP: timeout sending Config-Requests" in log:
        facts.append("LCP timed out (client pppd: 'LCP: timeout sending Config-Requests')")
    method = "MS-CHAPv2" if "MS-v2" in client.get("auth", "") else "CHAP"
    if "authentication failed" in log:
        facts.append(f"{method} authentication failed")
    elif "CHAP authentication succeeded" in log:
        facts.append(f"{method} authentication succeeded")
    return facts


def lcp_facts(client_log: str, server_log: str) -> list[str]:
    """LCP that went one way only: the server's pppd heard the client, the client not the server."""
    if "rcvd [LCP ConfReq" in server_log and "rcvd [LCP" not in client_log:
        return ["the server's pppd got the client's LCP requests, the client none of the server's"]
    return []


def mppe_facts(milestones: str) -> list[str]:
    """Whether MPPE came on, from the pppd milestones (the mppe script logs 'MPPE not offered'
    on a kernel without ppp_mppe)."""
    if "MPPE 128-bit" in milestones:
        return ["MPPE-128 on"]
    if "MPPE not offered" in milestones:
        return ["no MPPE (this kernel has no ppp_mppe)"]
    return []
