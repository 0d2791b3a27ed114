"""strongSwan plumbing shared by every IPsec protocol: one charon per node, swanctl fragments.

Every IPsec protocol on a node (``ikev2`` now, ``l2tp-ipsec`` next) shares ONE
charon. Each protocol contributes:

- the same node files from :func:`node_files` (``/etc/strongswan.conf`` and the
  start script; identical for every caller, so the node keeps one copy), and the
  lab CA / the node's own certificate and key from :func:`pki_files` if it uses
  certificates;
- its own swanctl fragment, ``/etc/swanctl/conf.d/<name>.conf``
  (:func:`fragment`), holding its ``connections``, ``pools`` and ``secrets``
  sections (swanctl merges the sections of every fragment);
- :func:`start_command` in its server or client start lines. The script starts
  charon if it does not run yet, waits for the vici socket, then runs
  ``swanctl --load-all`` (all fragments). It holds a lock, so tunnels checked in
  parallel on one client (two IPsec tunnels) start charon once, and running it
  again only reloads an unchanged configuration (established SAs stay).

Kernel back ends (``ctx.environment.esp``):

- kernel ESP: plugin ``kernel-netlink`` installs XFRM states and policies; the
  tunnels are policy-based (no interface; the ESP-in-UDP packets leave by eth0).
- no kernel ESP: ``kernel-libipsec`` is loaded *before* ``kernel-netlink``
  (without that order the CHILD_SA fails with ``Protocol not supported``); ESP
  runs in charon over a TUN device ``ipsec0`` and every SA is UDP-encapsulated
  (libipsec makes both ends claim a NAT). libipsec supports tunnel mode only, so
  a transport-mode protocol (L2TP/IPsec) needs kernel ESP.

charon logs to ``/var/log/vpnlab/charon.log`` with the IKE_SA's name on each
line (``<conn|N>``), so one protocol's lines can be picked out of the shared log.
:func:`transport_psk_connection` renders an IKEv1 (or v2) transport-mode PSK
connection with NAT-T, for L2TP/IPsec.
"""

from __future__ import annotations

import re

from lab.credentials import LabSecrets
from lab.protocols.base import CONF_DIR, LOG_DIR, RUN_DIR, Environment, Listen, NodeFile
from lab.render import render

CHARON = "/usr/lib/ipsec/charon"
CHARON_PIDFILE = "/var/run/charon.pid"
STRONGSWAN_CONF = "/etc/strongswan.conf"
SWANCTL_DIR = "/etc/swanctl"
CONF_D = f"{SWANCTL_DIR}/conf.d"
CHARON_LOG = f"{LOG_DIR}/charon.log"
START_SCRIPT = f"{CONF_DIR}/strongswan/start.sh"
CA_FILE = "vpnlab-ca.pem"  # in x509ca/
TUN_INTERFACE = "ipsec0"  # kernel-libipsec's TUN device
ROUTE_TABLE = 220  # charon's routing table for tunnel routes (source = the virtual IP)
VICI_WAIT_MS = 10_000
# IKE and NAT-T: every IPsec protocol of a server listens through the node's one charon
LISTENS = (Listen("udp", 500, shared_by="charon"), Listen("udp", 4500, shared_by="charon"))
# kernel ESP and XFRM in a User-Mode Linux guest, with the templates of the ESP proposals
# used (AES-GCM: strongSwan's default; AES-CBC with HMAC-SHA2: l2tp-ipsec's first).
GUEST_MODULES = (
    "esp4", "xfrm_user", "cryptomgr", "gcm", "ghash_generic", "ctr", "seqiv",
    "cbc", "hmac", "authenc", "echainiv", "sha512_generic", "drbg", "jitterentropy_rng",
)
# The kernel builds a crypto template's instance ("rfc4106(gcm(aes))") on its first SA, after
# asking modprobe for each name it is made of (~20 processes, 6-10 s in a guest, which the
# first tunnel's deadline paid). One throw-away SA of each kind at boot leaves them built
# (the guest's init runs it with on-demand loading off: the modules above are all it needs).
_KEY = "0x" + "00112233445566778899aabbccddeeff"
GUEST_WARMUP = (
    f"ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode transport"
    f" aead 'rfc4106(gcm(aes))' {_KEY}01020304 128",
    f"ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x101 mode transport"
    f" enc 'cbc(aes)' {_KEY} auth 'hmac(sha256)' {_KEY}00112233445566778899aabbccddeeff",
    "ip xfrm state flush",
)

CRYPTO_PLUGINS = [
    "random", "nonce", "openssl", "pem", "pkcs1", "pkcs8", "x509", "pubkey", "constraints",
    "aes", "sha1", "sha2", "hmac", "gcm", "gmp", "curve25519", "kdf",
]
SWANCTL_PLUGINS = ["random", "nonce", "openssl", "pem", "pkcs1", "pkcs8", "x509", "pubkey"]


def backend_label(environment: Environment) -> str:
    """The IPsec back end in words, as results and evidence name it."""
    if environment.esp:
        return "kernel ESP (XFRM via kernel-netlink, policy-based)"
    return f"kernel-libipsec (userspace ESP over TUN {TUN_INTERFACE}: this kernel has no ESP)"


def plugins(environment: Environment) -> list[str]:
    """charon's plugins, in load order: kernel-libipsec before kernel-netlink without kernel ESP."""
    kernel = ["kernel-netlink"] if environment.esp else ["kernel-libipsec", "kernel-netlink"]
    return CRYPTO_PLUGINS + kernel + ["socket-default", "vici"]


def strongswan_conf(node: str, environment: Environment) -> str:
    note = (
        "kernel ESP: kernel-netlink installs the SAs and policies"
        if environment.esp
        else "no kernel ESP: kernel-libipsec (listed before kernel-netlink) does ESP in userspace"
    )
    return render(
        "strongswan/strongswan.conf.j2",
        node=node,
        backend=backend_label(environment),
        conf_d=CONF_D,
        plugin_note=note,
        plugins=plugins(environment),
        swanctl_plugins=SWANCTL_PLUGINS,
        log=CHARON_LOG,
    )


def node_files(node: str, environment: Environment) -> list[NodeFile]:
    """strongswan.conf and the start script: the same for every IPsec protocol of the node."""
    script = render(
        "strongswan/start.sh.j2",
        log_dir=LOG_DIR,
        run_dir=RUN_DIR,
        log=CHARON_LOG,
        pidfile=CHARON_PIDFILE,
        charon=CHARON,
        backend=backend_label(environment).split(" (")[0],
        vici_wait_ms=VICI_WAIT_MS,
    )
    return [
        NodeFile(STRONGSWAN_CONF, strongswan_conf(node, environment)),
        NodeFile(START_SCRIPT, script, 0o755),
    ]


def start_command() -> str:
    """Start charon once per node (idempotent, locked) and load every swanctl fragment."""
    return f"sh {START_SCRIPT}"


def fragment_path(name: str) -> str:
    return f"{CONF_D}/{name}.conf"


def fragment(name: str, content: str) -> NodeFile:
    """One protocol's (or one tunnel's) swanctl configuration, loaded with all the others."""
    return NodeFile(fragment_path(name), content, 0o600)


def pki_files(secrets: LabSecrets, node: str, *, server: bool, san_ips: tuple[str, ...] = ()) -> list[NodeFile]:
    """The lab CA, the node's certificate (x509/<node>.pem) and key (private/<node>.pem)."""
    identity = secrets.tls(node, server=server, san_ips=san_ips)
    return [
        NodeFile(f"{SWANCTL_DIR}/x509ca/{CA_FILE}", secrets.ca.cert_pem),
        NodeFile(f"{SWANCTL_DIR}/x509/{node}.pem", identity.cert_pem),
        NodeFile(f"{SWANCTL_DIR}/private/{node}.pem", identity.key_pem, 0o600),
    ]


def transport_psk_connection(
    name: str,
    *,
    psk: str,
    local_id: str,
    remote_id: str,
    local_ts: str,
    remote_ts: str,
    local_addrs: str | None = None,
    remote_addrs: str | None = None,
    version: int = 1,
    start_action: str = "none",
    force_encap: bool = False,
    proposals: str = "aes256-sha256-modp2048,aes128-sha1-modp2048,default",
    esp_proposals: str = "aes256-sha256,aes128-sha1,default",
) -> str:
    """A swanctl fragment: one transport-mode connection authenticated by a pre-shared key.

    For L2TP/IPsec: server ``local_ts='dynamic[udp/1701]'``, ``remote_ts='dynamic[udp]'``,
    ``remote_id='%any'``; client the mirror image with ``remote_addrs`` set. Write
    ``dynamic[udp]``, never ``dynamic[udp/%any]`` (swanctl discards such a config).
    NAT-T is automatic (UDP 4500 once NAT is detected); ``force_encap`` fakes it.
    """
    if "/%any]" in local_ts + remote_ts:
        raise ValueError("write 'dynamic[udp]', not 'dynamic[udp/%any]': swanctl rejects the latter")
    return render(
        "strongswan/transport-psk.conf.j2",
        name=name,
        version=version,
        local_addrs=local_addrs,
        remote_addrs=remote_addrs,
        proposals=proposals,
        esp_proposals=esp_proposals,
        force_encap=force_encap,
        local_id=local_id,
        remote_id=remote_id,
        local_ts=local_ts,
        remote_ts=remote_ts,
        start_action=start_action,
        psk=psk,
    )


def initiate_command(child: str, log: str) -> str:
    """Start a connection in the background (its IKE log lines go to ``log``); returns at once."""
    return f"(swanctl --initiate --child {child} </dev/null >>{log} 2>&1 &)"


def log_lines_command(conn: str, lines: int = 30, source: str | None = None) -> str:
    """The lines of the shared charon log that belong to IKE_SAs of connection ``conn``
    (``source``: a shell printing the part of the log to read, e.g. ``ctx.since_attempt``)."""
    if source:
        return f"{source} | grep -F '<{conn}|' | tail -n {lines}"
    return f"grep -F '<{conn}|' {CHARON_LOG} | tail -n {lines}"


def terminate_command(conn: str) -> str:
    """End connection ``conn``'s IKE_SA (and its CHILD_SAs), if charon has one: a re-check's stop."""
    return (
        f"swanctl --list-sas --ike {conn} 2>/dev/null | grep -q '^{conn}:'"
        f" && swanctl --terminate --ike {conn} --timeout 5 >/dev/null 2>&1"
    )


def _peer_sa_id(conn: str, peer_id: str, version: int = 2) -> str:
    """Shell setting $n to the unique id of the latest IKE_SA of ``conn`` that authenticated ``peer_id``:
    IKEv2 logs ``authentication of 'ID' ...``, IKEv1 only ``IKE_SA ... established between ...[ID]``."""
    marker = f"'{peer_id}'" if version == 2 else f"[{peer_id}]"
    return (
        f"n=$(grep -F '<{conn}|' {CHARON_LOG} | grep -F \"{marker}\" "
        f"| sed -n 's/.*<{conn}|\\([0-9]*\\)>.*/\\1/p' | tail -n 1)"
    )


def peer_sas_command(conn: str, peer_id: str, version: int = 2) -> str:
    """On a server: ``swanctl --list-sas`` of the peer's latest IKE_SA (all SAs if none is known)."""
    return f"{_peer_sa_id(conn, peer_id, version)}; swanctl --list-sas ${{n:+--ike-id $n}}"


def peer_log_lines_command(conn: str, peer_id: str, lines: int = 30, version: int = 2) -> str:
    """On a server: the lines of the latest IKE_SA of ``conn`` that authenticated ``peer_id``
    (all of them: a responder's lines read ``<N>`` until the config is chosen, then
    ``<conn|N>``, so NAT detection is included); the log's tail if there is none."""
    return (
        f"{_peer_sa_id(conn, peer_id, version)}; "
        f"if [ -n \"$n\" ]; then grep -E \"<({conn}\\\\|)?$n>\" {CHARON_LOG} | tail -n {lines}; "
        f"else tail -n 15 {CHARON_LOG}; fi"
    )


def xfrm_states_command(peer: str | None) -> str:
    """The kernel's ESP states to and from ``peer`` (all of them if None; empty with
    kernel-libipsec), keys left out."""
    listing = f"{{ ip xfrm state list src {peer}; ip xfrm state list dst {peer}; }}" if peer else "ip xfrm state list"
    return f"{listing} 2>&1 | grep -vE '^[[:space:]]+(aead|enc|auth|auth-trunc|comp) '"


def routes_command() -> str:
    """The routes charon installed for its tunnels (table 220; source = the virtual IP)."""
    return f"ip route show table {ROUTE_TABLE} 2>/dev/null || echo 'no table {ROUTE_TABLE}: charon installed no tunnel route'"


def backend_command() -> str:
    """Which back end the running charon loaded (its plugin line) and what the config says."""
    return f"grep -m1 'IPsec backend' {STRONGSWAN_CONF}; grep -m1 'loaded plugins' {CHARON_LOG}"


# --- reading the evidence -------------------------------------------------------

_RETRANSMIT = re.compile(r"retransmit (\d+) of request with message ID 0\b")
_VIP = re.compile(r"installing new virtual IP (\S+)")
_RETRANSMIT_V1 = re.compile(r"sending retransmit (\d+) of request message ID 0, seq (\d+)")
_SA_PACKETS = re.compile(r"^\s+(in|out)\s+\S+,\s+\d+ bytes,\s+(\d+) packets", re.MULTILINE)


def backend_fact(text: str) -> str | None:
    if "kernel-libipsec" in text:
        return "IPsec backend: " + backend_label(Environment(esp=False))
    if "kernel-netlink" in text:
        return "IPsec backend: " + backend_label(Environment(esp=True))
    return None


def nat_facts(client_text: str, server_text: str, sas_text: str) -> list[str]:
    """NAT-T as both ends saw it: NAT detection lines and UDP-encapsulated ESP."""
    facts = []
    seen = []
    if "local host is behind NAT" in client_text:
        seen.append("the client found itself behind NAT")
    if "remote host is behind NAT" in client_text:
        seen.append("the client found the server behind NAT")
    if "remote host is behind NAT" in server_text:
        seen.append("the server found the client behind NAT")
    if "local host is behind NAT" in server_text:
        seen.append("the server found itself behind NAT")
    if "faking NAT situation" in client_text + server_text:
        seen.append("libipsec faked NAT to force UDP encapsulation")
    if seen:
        facts.append("NAT-T: " + ", ".join(seen))
    if "ESP in UDP" in sas_text or "espinudp" in sas_text:
        facts.append("ESP encapsulated in UDP 4500")
    return facts


def ike_failure_facts(text: str, first_exchange: str = "IKE_SA_INIT") -> list[str]:
    """Why an IKE exchange failed, from the initiator's log lines (message ID 0 is the first
    exchange: IKE_SA_INIT in IKEv2, Main Mode in IKEv1)."""
    facts = []
    retransmits = [int(m) for m in _RETRANSMIT.findall(text)]
    if retransmits or "giving up after" in text:
        sent = (max(retransmits) + 1) if retransmits else 1
        if "received packet" not in text:
            facts.append(f"{first_exchange} sent {sent} times without an answer from the server")
        else:
            facts.append(f"the server answered, then an IKE request was sent {sent} times without an answer")
    for notify in ("AUTHENTICATION_FAILED", "NO_PROPOSAL_CHOSEN", "TS_UNACCEPTABLE", "INTERNAL_ADDRESS_FAILURE",
                   "FAILED_CP_REQUIRED", "INVALID_KE_PAYLOAD"):
        if f"received {notify}" in text or f"{notify} notify" in text:
            facts.append(f"the server answered {notify}")
    if "constraint check failed" in text or "no trusted" in text:
        facts.append("certificate not trusted")
    return facts


def virtual_ip(text: str) -> str | None:
    match = _VIP.search(text)
    return match.group(1) if match else None


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
