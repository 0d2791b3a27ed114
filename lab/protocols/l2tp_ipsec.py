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

import math
import re

from lab.credentials import LabSecrets
from lab.protocols import strongswan
from lab.protocols.base import CONF_DIR, RUN_DIR, Flow, NodeFile, ServerContext, TunnelContext
from lab.protocols.l2tp import PORT, L2tp
from lab.render import render

CONN = "l2tp-ipsec"
FILES = f"{CONF_DIR}/l2tp-ipsec"
FIREWALL_SCRIPT = f"{FILES}/firewall.sh"
IPTABLES_MARKER = f"{RUN_DIR}/l2tp-ipsec.iptables"  # which iptables back end holds the rule
DROP_COMMENT = "vpnlab: l2tp-ipsec drop unprotected L2TP"
FALLBACK_WAIT = 10  # seconds a fallback client waits for IPsec before dialling plain L2TP

_SA_PACKETS = re.compile(r"^\s+(in|out)\s+\S+,\s+\d+ bytes,\s+(\d+) packets", re.MULTILINE)
_REMOTE = re.compile(r"remote '([^']*)' @ ([0-9.]+)\[")
_RETRANSMIT_V1 = re.compile(r"sending retransmit (\d+) of request message ID 0, seq (\d+)")


class L2tpIpsec(L2tp):
    name = "l2tp-ipsec"
    octet = 105
    deadline = 20.0
    flows = (Flow("udp", 500), Flow("udp", 4500), Flow("esp"))
    family = "ipsec"
    interface_prefix = "l2tpsec"
    server_conf_template = "l2tp-ipsec/xl2tpd-server.conf.j2"
    ping_source_note = "the PPP address, given only while an ESP transport SA to the server exists"

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
        limit = ctx.tunnel.deadline or self.deadline  # the up-check's deadline (lab.tunnels)
        wait = min(FALLBACK_WAIT, limit) if fallback else limit
        return [
            strongswan.start_command(),
            f"sh {FILES}/connect-ipsec.sh {self.conn(ctx)} {self.ipsec_pidfile(ctx.tunnel.server)} {ctx.log_path} "
            f"{math.ceil(wait)} {'yes' if fallback else 'no'} {self.files_dir}/connect.sh {self.dial_arguments(ctx)}",
        ]

    def ipsec_pidfile(self, server: str) -> str:
        return f"{RUN_DIR}/{self.name}-{server}.ipsec.pid"

    def still_trying(self, ctx: TunnelContext) -> tuple[str, str]:
        server = ctx.tunnel.server
        return (
            "the client (IPsec set-up, then xl2tpd)",
            f"{{ kill -0 $(cat {self.ipsec_pidfile(server)}) || kill -0 $(cat {self.pidfile(server)}); }} 2>/dev/null",
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
            "charon log": strongswan.log_lines_command(self.conn(ctx), 40),
        }

    @staticmethod
    def conn(ctx: TunnelContext) -> str:
        return f"{CONN}-{ctx.tunnel.server}"

    # --- reading the evidence -----------------------------------------------

    def diagnose(self, evidence: dict[str, str]) -> list[str]:
        client_log = evidence.get("client log", "") + "\n" + evidence.get("charon log", "")
        server_log = evidence.get("server charon log", "")
        listed = evidence.get("swanctl --list-sas", "")
        xfrm = evidence.get("xfrm state", "")
        facts = []
        ipsec_up = "ESTABLISHED" in listed and "INSTALLED, TRANSPORT" in listed
        if ipsec_up:
            facts.append("IPsec: IKEv1 SA (pre-shared key) and transport-mode CHILD_SA established")
        else:
            facts += ikev1_failure_facts(client_log, server_log)
        facts += strongswan.nat_facts(client_log, server_log, listed + "\n" + xfrm)
        counters = esp_packets(listed)
        if counters:
            facts.append(counters)
        facts += shared_nat_facts(evidence.get("server swanctl --list-sas", ""), evidence.get("server IKE_SAs", ""))
        dropped = server_drops(evidence.get("server unprotected L2TP dropped", ""))
        if dropped:
            facts.append(f"the server dropped {dropped} unprotected L2TP packets (UDP {PORT} without IPsec)")
        plain = [
            line for line in evidence.get("router conntrack", "").splitlines()
            if line.startswith("udp") and f"dport={PORT} " in line + " "
        ]
        if plain:
            facts.append(f"router conntrack holds UDP {PORT} to the server: L2TP crossed the router without IPsec")
        elif ipsec_up:
            facts.append(f"no UDP {PORT} through the router: L2TP travelled inside ESP")
        if "dialling plain L2TP anyway" in client_log:
            facts.append("the client fell back to plain L2TP")
        facts += super().diagnose(evidence)
        backend = strongswan.backend_fact(evidence.get("backend", ""))
        if backend:
            facts.append(backend)
        return facts


def psk(secrets: LabSecrets, server: str) -> str:
    """The server's pre-shared key, made per lab; every client of the server knows it."""
    return secrets.password(f"l2tp-ipsec psk {server}")


def ikev1_failure_facts(client_text: str, server_text: str) -> list[str]:
    """Why IKEv1 Main Mode failed, from both ends' log lines."""
    facts = []
    retransmits = [(int(n), int(seq)) for n, seq in _RETRANSMIT_V1.findall(client_text)]
    if retransmits:
        n, seq = max(retransmits, key=lambda r: (r[1], r[0]))
        if seq <= 1:
            facts.append(f"IKEv1 Main Mode sent {n + 1} times without an answer from the server")
        else:
            facts.append(f"the server answered, then IKEv1 Main Mode message {2 * seq - 1} was sent {n + 1} times"
                         " and never accepted")
    if "decryption failed" in server_text:
        facts.append("the server could not decrypt the client's Main Mode message 5 (identity and hash): "
                     "the pre-shared keys differ")
    if "AUTHENTICATION_FAILED" in client_text or "INVALID_ID_INFORMATION" in client_text:
        facts.append("IKEv1 authentication failed")
    if "NO_PROPOSAL_CHOSEN" in client_text:
        facts.append("the server answered NO_PROPOSAL_CHOSEN")
    if not facts and client_text.strip():
        facts.append("no IPsec SA established")
    return facts


def esp_packets(sas: str) -> str:
    """The CHILD_SA's packet counters from ``swanctl --list-sas`` ("in  c1, 360 bytes, 5 packets")."""
    counts = {d: int(n) for d, n in _SA_PACKETS.findall(sas)}
    if not counts:
        return ""
    out, back = counts.get("out", 0), counts.get("in", 0)
    text = f"ESP SA counted {out} packets out, {back} in"
    return text + (": nothing came back through it" if out and not back else "")


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
