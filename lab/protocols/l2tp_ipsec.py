"""L2TP/IPsec: xl2tpd with pppd as for plain L2TP, inside an IKEv1 transport-mode IPsec SA
authenticated by a pre-shared key, the way phones and desktops connect to such servers.

Server: the same xl2tpd LNS as ``l2tp`` (local ip 10.105.S.1), one swanctl connection
``l2tp-ipsec`` in transport mode (any client, also behind NAT: remote_ts ``dynamic[udp]``,
local_ts ``dynamic[udp/1701]``) with a PSK made per lab and server, and an INPUT rule that
drops every L2TP packet no IPsec SA protected (``-m policy --dir in --pol none``): a client
whose IPsec fails would otherwise fall back to plain L2TP silently (xl2tpd never asks whether
IPsec is up) and look like success. The rule's counter is evidence.

Client: ``connect.sh`` initiates the transport connection ``l2tp-ipsec-<server>`` and waits
for its CHILD_SA (at most the deadline), then dials L2TP through its own xl2tpd as ``l2tp``
does; if IPsec does not come up it gives up (the up-check ends early). Through the NAT router
IKE moves to UDP 4500 and ESP travels in UDP 4500 (NAT-T), L2TP inside it: the router sees
no UDP 1701 at all, so its L2TP passthrough switch does not matter, its IPsec one does.

"Up" = the PPP interface ``l2tpsec<S>`` is up and a ping to 10.105.S.1 answers, sent from
the PPP address only while an ESP transport SA to the server exists (``ping_source``).

Per-tunnel options (the topology's ``options``), to show what a broken client does:

- ``psk: wrong``: the client's PSK differs from the server's (IKEv1 Main Mode fails);
- ``fallback: true``: when IPsec is not up after ``FALLBACK_WAIT`` s, dial plain L2TP anyway,
  as xl2tpd-based clients do; the server's drop rule keeps that from coming up.

Needs kernel PPP, L2TP and kernel ESP in transport mode (strongSwan's kernel-libipsec does
tunnel mode only): on a kernel without ESP the tunnel is skipped or runs in a UML guest.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING

from lab.credentials import LabSecrets
from lab.protocols import strongswan
from ipaddress import IPv4Network

from lab.kernel.needs import Alternative, Need
from lab.protocols.base import CONF_DIR, RUN_DIR, Flow, Listen, NodeFile, ServerContext, TunnelContext
from lab.protocols.l2tp import PORT, L2tp
from lab.protocols.options import Options
from lab.render import render

if TYPE_CHECKING:  # pragma: no cover
    from lab.check.evidence import Evidence

CONN = "l2tp-ipsec"
FILES = f"{CONF_DIR}/l2tp-ipsec"
FIREWALL_SCRIPT = f"{FILES}/firewall.sh"
IPTABLES_MARKER = f"{RUN_DIR}/l2tp-ipsec.iptables"  # which iptables back end holds the rule
DROP_COMMENT = "vpnlab: l2tp-ipsec drop unprotected L2TP"
FALLBACK_WAIT = 10  # seconds a fallback client waits for IPsec before dialling plain L2TP

_REMOTE = re.compile(r"remote '([^']*)' @ ([0-9.]+)\[")


class L2tpIpsec(L2tp):
    name = "l2tp-ipsec"
    tunnel_net = IPv4Network("10.105.0.0/16")
    interface_prefix = "l2tpsec"
    deadline = 20.0
    flows = (Flow("udp", 500), Flow("udp", 4500), Flow("esp"))
    family = "ipsec"
    listens = (*strongswan.LISTENS, Listen("udp", PORT))  # the node's one charon, and its own xl2tpd
    # transport mode needs kernel ESP: strongSwan's kernel-libipsec does tunnel mode only
    kernel_needs = (*L2tp.kernel_needs, Need(Alternative("esp", "kernel ESP (transport mode)")))
    guest_modules = (*L2tp.guest_modules, *strongswan.GUEST_MODULES, "xt_policy")  # xt_policy: the drop rule
    guest_warmup = strongswan.GUEST_WARMUP
    server_conf_template = "l2tp-ipsec/xl2tpd-server.conf.j2"
    ping_source_note = "the PPP address, given only while an ESP transport SA to the server exists"
    options = ("mtu", "psk", "fallback")

    def option_problems(self, options: Options) -> dict[str, str]:
        problems = super().option_problems(options)
        if "psk" in options and options["psk"] != "wrong":
            problems["psk"] = f"the one value is 'wrong' (the client's PSK differs from the server's), not {json.dumps(options['psk'])}"
        if "fallback" in options and type(options["fallback"]) is not bool:
            problems["fallback"] = f"must be true or false (dial plain L2TP when IPsec is not up), not {json.dumps(options['fallback'])}"
        return problems

    # --- server -------------------------------------------------------------

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        wan = str(ctx.wan_address)
        conf = strongswan.transport_psk_connection(
            CONN,
            psk=psk(ctx.secrets, ctx.server),
            local_id=wan,
            remote_id="%any",
            local_ts=f"dynamic[udp/{PORT}]",
            remote_ts="dynamic[udp]",
            local_addrs=wan,
        )
        firewall = render(
            "l2tp-ipsec/firewall.sh.j2",
            port=PORT,
            comment=DROP_COMMENT,
            marker=IPTABLES_MARKER,
            errors=f"{RUN_DIR}/l2tp-ipsec-iptables.err",
        )
        return [
            *super().server_files(ctx),
            NodeFile(FIREWALL_SCRIPT, firewall, 0o755),
            *strongswan.node_files(ctx.server, ctx.environment),
            strongswan.fragment(CONN, conf),
        ]

    def server_start(self, ctx: ServerContext) -> list[str]:
        # the drop rule before anything listens: no L2TP call is ever accepted without IPsec
        return [f"sh {FIREWALL_SCRIPT}", strongswan.start_command(), *super().server_start(ctx)]

    def server_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        client = ctx.tunnel.client
        return {
            **super().server_evidence(ctx),
            "swanctl --list-sas": strongswan.peer_sas_command(CONN, client, version=1),
            "charon log": strongswan.peer_log_lines_command(CONN, client, 60, version=1),
            "xfrm state": strongswan.xfrm_states_command(None),
            # every client's IKE_SA, by identity and address: clients behind one NAT share an address
            "IKE_SAs": f"swanctl --list-sas --ike {CONN} 2>/dev/null | grep -E \"^ +remote '\"",
            "unprotected L2TP dropped": (
                f"$(cat {IPTABLES_MARKER} 2>/dev/null || echo iptables) -L INPUT -v -n -x | grep -F '{DROP_COMMENT}'"
            ),
        }

    # --- client -------------------------------------------------------------

    def client_files(self, ctx: TunnelContext) -> list[NodeFile]:
        server, client = ctx.tunnel.server, ctx.tunnel.client
        key = psk(ctx.secrets, server)
        if str(ctx.tunnel.options.get("psk", "")) == "wrong":
            key = f"wrong-{key}"
        conf = strongswan.transport_psk_connection(
            self.conn(ctx),
            psk=key,
            local_id=client,
            remote_id=str(ctx.server_wan),
            local_ts="dynamic[udp]",
            remote_ts=f"dynamic[udp/{PORT}]",
            remote_addrs=str(ctx.server_wan),
        )
        return [
            *super().client_files(ctx),
            NodeFile(f"{FILES}/connect-ipsec.sh", render("l2tp-ipsec/connect.sh.j2"), 0o755),
            *strongswan.node_files(client, ctx.environment),
            strongswan.fragment(self.conn(ctx), conf),
        ]

    def client_start(self, ctx: TunnelContext) -> list[str]:
        fallback = ctx.tunnel.options.get("fallback") is True
        limit = self.deadline_for(ctx)  # the up-check's deadline (lab.check.scripts)
        wait = min(FALLBACK_WAIT, limit) if fallback else limit
        return [
            strongswan.start_command(),
            f"sh {FILES}/connect-ipsec.sh {self.conn(ctx)} {self.ipsec_pidfile(ctx.tunnel.server)} {ctx.log_path} "
            f"{math.ceil(wait)} {'yes' if fallback else 'no'} {self.files_dir}/connect.sh {self.dial_arguments(ctx)}",
        ]

    def client_stop(self, ctx: TunnelContext) -> list[str]:
        return [
            f"stop_pid {self.ipsec_pidfile(ctx.tunnel.server)}",
            *super().client_stop(ctx),  # xl2tpd and its pppd
            strongswan.terminate_command(self.conn(ctx)),
        ]

    def client_shared_logs(self, ctx: TunnelContext) -> tuple[str, ...]:
        return (strongswan.CHARON_LOG,)

    def ipsec_pidfile(self, server: str) -> str:
        return f"{RUN_DIR}/{self.name}-{server}.ipsec.pid"

    def still_trying(self, ctx: TunnelContext) -> tuple[str, str]:
        server = ctx.tunnel.server
        return (
            "the client (IPsec set-up, then xl2tpd)",
            f"alive {self.ipsec_pidfile(server)} {self.pidfile(server)}",
        )

    def ping_source(self, ctx: TunnelContext) -> str:
        """The PPP interface's address, printed only while an ESP transport SA to the server
        exists: a client that fell back to plain L2TP never gets a ping sent."""
        return (
            f"ip xfrm state list dst {ctx.server_wan} proto esp 2>/dev/null | grep -q 'mode transport'"
            f" && ip -o -4 address show dev {self.client_interface(ctx)} 2>/dev/null"
            " | sed -n 's/.* inet \\([0-9.]*\\).*/\\1/p' | head -n 1"
        )

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        return {
            **super().client_evidence(ctx),
            "backend": strongswan.backend_command(),
            "swanctl --list-sas": f"swanctl --list-sas --ike {self.conn(ctx)}",
            "xfrm state": strongswan.xfrm_states_command(str(ctx.server_wan)),
            "charon log": strongswan.log_lines_command(self.conn(ctx), 40, ctx.since_attempt(strongswan.CHARON_LOG)),
        }

    @staticmethod
    def conn(ctx: TunnelContext) -> str:
        return f"{CONN}-{ctx.tunnel.server}"

    # --- reading the evidence -----------------------------------------------

    def diagnose(self, evidence: Evidence) -> list[str]:
        client, server = evidence.client, evidence.server
        client_log = client.get("client log", "") + "\n" + client.get("charon log", "")
        server_log = server.get("charon log", "")
        listed = client.get("swanctl --list-sas", "")
        xfrm = client.get("xfrm state", "")
        facts = []
        ipsec_up = "ESTABLISHED" in listed and "INSTALLED, TRANSPORT" in listed
        if ipsec_up:
            facts.append("IPsec: IKEv1 SA (pre-shared key) and transport-mode CHILD_SA established")
        else:
            facts += strongswan.ikev1_failure_facts(client_log, server_log)
        facts += strongswan.nat_facts(client_log, server_log, listed + "\n" + xfrm)
        counters = strongswan.esp_packets(listed)
        if counters:
            facts.append(counters)
        facts += shared_nat_facts(server.get("swanctl --list-sas", ""), server.get("IKE_SAs", ""))
        dropped = server_drops(server.get("unprotected L2TP dropped", ""))
        if dropped:
            facts.append(f"the server dropped {dropped} unprotected L2TP packets (UDP {PORT} without IPsec)")
        if evidence.router.entries("udp", PORT):
            facts.append(f"router conntrack holds UDP {PORT} to the server: L2TP crossed the router without IPsec")
        elif ipsec_up:
            facts.append(f"no UDP {PORT} through the router: L2TP travelled inside ESP")
        if "dialling plain L2TP anyway" in client_log:
            facts.append("the client fell back to plain L2TP")
        facts += super().diagnose(evidence)
        backend = strongswan.backend_fact(client.get("backend", ""))
        if backend:
            facts.append(backend)
        return facts


def psk(secrets: LabSecrets, server: str) -> str:
    """The server's pre-shared key, made per lab; every client of the server knows it."""
    return secrets.password(f"l2tp-ipsec psk {server}")


def shared_nat_facts(own: str, every: str) -> list[str]:
    """Several clients behind one NAT address: their transport-mode policies on the server are the
    same (the NAT address, UDP, to the server's UDP 1701), so one SA carries the server's L2TP for all."""
    mine = _REMOTE.search(own)
    if not mine:
        return []
    address = mine.group(2)
    peers = sorted({peer for peer, at in _REMOTE.findall(every) if at == address})
    if len(peers) < 2:
        return []
    return [
        f"the server holds IKEv1 SAs of {len(peers)} clients behind {address} ({', '.join(peers)}): their "
        "transport-mode policies are the same, so the server sends L2TP to all of them through the SA "
        "installed last"
    ]


def server_drops(text: str) -> int:
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            return int(fields[0])
    return 0
