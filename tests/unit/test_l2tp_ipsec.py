"""The l2tp-ipsec module: what it renders (kernel ESP, the lab's real environment) and how it
reads the evidence. test_rendering covers every node file of its topologies as golden files."""

from __future__ import annotations

from lab.plan import plan_lab
from lab.protocols import PROTOCOLS, strongswan
from lab.protocols.base import Environment
from lab.check.evidence import Evidence, RouterEvidence
from lab.protocols.l2tp_ipsec import DROP_COMMENT, shared_nat_facts
from lab.protocols.strongswan import esp_packets, ikev1_failure_facts
from lab.topology import load_topology

from .conftest import HERE, FixedSecrets, compare_golden

TOPOLOGY = HERE / "topologies" / "valid" / "l2tp-ipsec.yml"
KERNEL = Environment(esp=True, ppp=True)


def node(name: str):
    topology = load_topology(TOPOLOGY)
    return plan_lab(topology, KERNEL, FixedSecrets(topology.name)).node(name)


def files(name: str) -> dict[str, str]:
    return {f.path: f.content for f in node(name).files}


def test_server_transport_psk_connection_and_drop_rule() -> None:
    vpn1 = node("vpn1")
    conf = files("vpn1")[strongswan.fragment_path("l2tp-ipsec")]
    for expected in ("version = 1", "mode = transport", "local_addrs = 203.0.113.10", "id = 203.0.113.10",
                     "id = %any", "local_ts = dynamic[udp/1701]", "remote_ts = dynamic[udp]",
                     'secret = "PASSWORD-OF-l2tp-ipsec psk vpn1"'):
        assert expected in conf, expected
    # the drop rule comes first, then charon (shared with ikev2), then xl2tpd
    assert vpn1.setup[0] == "sh /etc/vpnlab/l2tp-ipsec/firewall.sh"
    assert vpn1.setup.count(strongswan.start_command()) == 2  # l2tp-ipsec and ikev2: one charon, started once
    assert vpn1.setup[2].startswith("xl2tpd -D -c /etc/vpnlab/l2tp-ipsec/xl2tpd.conf")
    firewall = files("vpn1")["/etc/vpnlab/l2tp-ipsec/firewall.sh"]
    assert "-A INPUT -p udp --dport 1701 -m policy --dir in --pol none" in firewall
    assert f'--comment "{DROP_COMMENT}" -j DROP' in firewall
    assert firewall.index("iptables-nft") < firewall.index("iptables-legacy")
    assert "local ip = 10.105.0.1" in files("vpn1")["/etc/vpnlab/l2tp-ipsec/xl2tpd.conf"]
    assert "kernel-libipsec" not in files("vpn1")[strongswan.STRONGSWAN_CONF].split("load =")[1].splitlines()[0]


def test_psk_is_per_server_and_the_wrong_option_changes_only_the_client() -> None:
    alice = files("alice")
    good = alice[strongswan.fragment_path("l2tp-ipsec-vpn1")]
    wrong = alice[strongswan.fragment_path("l2tp-ipsec-vpn2")]
    assert 'secret = "PASSWORD-OF-l2tp-ipsec psk vpn1"' in good
    assert 'secret = "wrong-PASSWORD-OF-l2tp-ipsec psk vpn2"' in wrong
    assert 'secret = "PASSWORD-OF-l2tp-ipsec psk vpn2"' in files("bob")[strongswan.fragment_path("l2tp-ipsec-vpn2")]
    for expected in ("remote_addrs = 203.0.113.10", "id = alice", "local_ts = dynamic[udp]",
                     "remote_ts = dynamic[udp/1701]", "mode = transport"):
        assert expected in good, expected


def test_client_brings_ipsec_up_first_and_pings_only_through_esp() -> None:
    alice = files("alice")
    check = alice["/etc/vpnlab/tunnels/alice-l2tp-ipsec-vpn1/check.sh"]
    assert "sh /etc/vpnlab/strongswan/start.sh" in check
    assert ("sh /etc/vpnlab/l2tp-ipsec/connect-ipsec.sh l2tp-ipsec-vpn1 /run/vpnlab/l2tp-ipsec-vpn1.ipsec.pid "
            "/var/log/vpnlab/l2tp-ipsec-vpn1.log 20 no /etc/vpnlab/l2tp-ipsec/connect.sh "
            "/etc/vpnlab/l2tp-ipsec/vpn1.conf /run/vpnlab/xl2tpd-vpn1.control /run/vpnlab/l2tp-ipsec-vpn1.pid "
            "/var/log/vpnlab/l2tp-ipsec-vpn1.log vpn1 l2tpsec0") in check
    # the ping's source (the PPP address) is given only while an ESP transport SA to the server exists
    assert "ip xfrm state list dst 203.0.113.10 proto esp 2>/dev/null | grep -q 'mode transport'" in check
    assert "is_up l2tpsec0" in check and 'ping -n -c 1 -W 1 -I "$src" 10.105.0.1' in check
    # the client has given up once neither the IPsec set-up nor xl2tpd runs
    assert "if ! alive /run/vpnlab/l2tp-ipsec-vpn1.ipsec.pid /run/vpnlab/l2tp-ipsec-vpn1.pid; then" in check
    # the fallback client waits 10 s for IPsec, then dials plain L2TP; a deadline option bounds the wait
    assert " 10 yes /etc/vpnlab/l2tp-ipsec/connect.sh" in alice["/etc/vpnlab/tunnels/alice-l2tp-ipsec-vpn2/check.sh"]
    assert " 12 no /etc/vpnlab/l2tp-ipsec/connect.sh" in files("bob")["/etc/vpnlab/tunnels/bob-l2tp-ipsec-vpn2/check.sh"]
    connect = alice["/etc/vpnlab/l2tp-ipsec/connect-ipsec.sh"]
    assert 'swanctl --initiate --child "$conn" --timeout "$wait"' in connect
    assert 'grep -q "INSTALLED, TRANSPORT"' in connect


def test_interfaces_ports_and_shared_files() -> None:
    alice, bob = node("alice"), node("bob")
    assert "/dev/ppp" in alice.devices
    paths = [f.path for f in alice.files]
    assert paths.count(strongswan.STRONGSWAN_CONF) == 1 and paths.count("/etc/ppp/chap-secrets") == 1
    secrets = files("alice")["/etc/ppp/chap-secrets"]
    assert '"alice"\t"vpn1-l2tp-ipsec"\t"PASSWORD-OF-l2tp-ipsec alice@vpn1"' in secrets
    # one xl2tpd per tunnel, each on its own UDP port; plain L2TP keeps its own files
    assert "port = 1702" in files("bob")["/etc/vpnlab/l2tp-ipsec/vpn2.conf"]
    assert "port = 1703" in files("bob")["/etc/vpnlab/l2tp/vpn3.conf"]
    assert "ifname l2tpsec1" in files("bob")["/etc/vpnlab/l2tp-ipsec/vpn2.options"]
    assert any(p.endswith("bob-l2tp-vpn3/check.sh") for p in [f.path for f in bob.files])
    assert len(PROTOCOLS["l2tp-ipsec"].interface_prefix + "99") <= 15  # Linux interface names: 15 characters


def test_rendering_with_kernel_esp_matches_golden() -> None:
    """test_rendering renders the default environment (no kernel ESP); this the lab's real one."""
    for name in ("vpn1", "alice"):
        n = node(name)
        parts = [f"# node {n.name} ({n.role}), kernel ESP and PPP", "### setup.sh", n.setup_script()]
        parts += [f"### {f.path} (mode {f.mode:o})\n{f.content}" for f in sorted(n.files, key=lambda f: f.path)]
        compare_golden(HERE / "golden" / "l2tp-ipsec-kernel-esp" / f"{name}.txt", "\n".join(parts))


UP_SAS = """\
l2tp-ipsec-vpn: #1, ESTABLISHED, IKEv1, d45f31a60c2a1b64_i* bf5cfdbe225fef73_r
  local  'alice' @ 192.168.100.10[4500]
  remote '203.0.113.10' @ 203.0.113.10[4500]
  l2tp-ipsec-vpn: #1, reqid 1, INSTALLED, TRANSPORT-in-UDP, ESP:AES_CBC-256/HMAC_SHA2_256_128
    in  ca73160d,    830 bytes,    19 packets,     1s ago
    out c27bb28c,    778 bytes,    16 packets,     1s ago
"""


def test_diagnosis_of_an_l2tp_ipsec_tunnel_that_came_up() -> None:
    facts = PROTOCOLS["l2tp-ipsec"].diagnose(Evidence(
        client={
            "swanctl --list-sas": UP_SAS,
            "charon log": "[IKE] <l2tp-ipsec-vpn|1> local host is behind NAT, sending keep alives",
            "xfrm state": "encap type espinudp sport 4500 dport 4500 addr 0.0.0.0",
            "xl2tpd": "xl2tpd[1]: Connection established to 203.0.113.10, 1701.\nxl2tpd[1]: Call established with",
            "backend": "loaded plugins: charon kernel-netlink",
        },
        server={
            "charon log": "[IKE] <1> remote host is behind NAT",
            "unprotected L2TP dropped": f"0 0 DROP 17 -- * * 0.0.0.0/0 0.0.0.0/0 /* {DROP_COMMENT} */",
        },
        router=RouterEvidence.parse("udp 17 118 src=192.168.100.10 dst=203.0.113.10 sport=4500 dport=4500 src=..."),
    ))
    assert facts[:5] == [
        "IPsec: IKEv1 SA (pre-shared key) and transport-mode CHILD_SA established",
        "NAT-T: the client found itself behind NAT, the server found the client behind NAT",
        "ESP encapsulated in UDP 4500",
        "ESP SA counted 16 packets out, 19 in",
        "no UDP 1701 through the router: L2TP travelled inside ESP",
    ]
    assert "L2TP control connection (UDP 1701) established" in facts
    assert not any("dropped" in f for f in facts)


def test_diagnosis_of_a_wrong_psk_client_that_fell_back_to_plain_l2tp() -> None:
    facts = PROTOCOLS["l2tp-ipsec"].diagnose(Evidence(
        client={
            "swanctl --list-sas": "l2tp-ipsec-vpn: #1, CONNECTING, IKEv1",
            "charon log": "[IKE] <l2tp-ipsec-vpn|1> sending retransmit 1 of request message ID 0, seq 3\n"
                          "[IKE] <l2tp-ipsec-vpn|1> sending retransmit 2 of request message ID 0, seq 3",
            "client log": "vpnlab: IPsec not up after 10.4 s; dialling plain L2TP anyway (fallback)",
        },
        server={
            "charon log": "[ENC] <1> invalid ID_V1 payload length, decryption failed?",
            "unprotected L2TP dropped": f"4  528 DROP 17 -- * * 0.0.0.0/0 0.0.0.0/0 /* {DROP_COMMENT} */",
        },
        router=RouterEvidence.parse(
            "udp 17 29 src=192.168.100.10 dst=203.0.113.10 sport=1701 dport=1701 [UNREPLIED] src=..."
        ),
    ))
    for expected in (
        "the server answered, then IKEv1 Main Mode message 5 was sent 3 times and never accepted",
        "the server could not decrypt the client's Main Mode message 5 (identity and hash): the pre-shared keys differ",
        "the server dropped 4 unprotected L2TP packets (UDP 1701 without IPsec)",
        "router conntrack holds UDP 1701 to the server: L2TP crossed the router without IPsec",
        "the client fell back to plain L2TP",
    ):
        assert expected in facts, (expected, facts)


def test_ikev1_with_no_answer_and_shared_nat() -> None:
    text = "sending retransmit 1 of request message ID 0, seq 1\nsending retransmit 2 of request message ID 0, seq 1"
    assert ikev1_failure_facts(text, "") == ["IKEv1 Main Mode sent 3 times without an answer from the server"]
    assert esp_packets("    in  c1,  0 bytes,  0 packets\n    out c2, 550 bytes,  5 packets, 1s ago") == (
        "ESP SA counted 5 packets out, 0 in: nothing came back through it"
    )
    own = "l2tp-ipsec: #1, ESTABLISHED, IKEv1\n  remote 'alice' @ 203.0.113.1[4500]"
    every = "  remote 'bob' @ 203.0.113.1[27886]\n  remote 'alice' @ 203.0.113.1[4500]"
    [fact] = shared_nat_facts(own, every)
    assert fact.startswith("the server holds IKEv1 SAs of 2 clients behind 203.0.113.1 (alice, bob)")
    assert shared_nat_facts(own, "  remote 'alice' @ 203.0.113.1[4500]") == []
