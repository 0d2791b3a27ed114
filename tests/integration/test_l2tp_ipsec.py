"""L2TP/IPsec (IKEv1 transport mode, PSK, then xl2tpd + pppd) through the NAT router.

What the lab shows, asserted as it really happens:

- up through the default router: IKE moves to UDP 4500 (NAT-T), ESP travels in UDP 4500 and
  L2TP inside it; the router never sees UDP 1701;
- down when the router's IPsec passthrough is off (its UDP 500 rule counts the dropped Main
  Mode), while plain L2TP through the same router comes up;
- UP when only the router's L2TP passthrough is off: its UDP 1701 rule never sees the L2TP,
  which is inside ESP in UDP 4500;
- two clients behind the one NAT to one server: both IKEv1 SAs come up, but their
  transport-mode policies on the server are the same (NAT address, UDP, to UDP 1701), so the
  server sends L2TP to both through the SA installed last: that client comes up, the other
  one gets nothing back;
- a client with the wrong PSK that falls back to plain L2TP (as xl2tpd-based clients do) is
  down: the server drops L2TP no IPsec SA protected, and counts it.

Needs kernel PPP, L2TP and ESP (transport mode): on a host without them the labs run in a
User-Mode Linux guest (--vpnlab-runtime auto).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.pytest_plugin import RunningLab, assert_tunnel, lab_fixture
from .timing import assert_decided_by_deadline

TOPOLOGIES = Path(__file__).parent / "topologies"
ROUTER_WAN = "203.0.113.1"
KEY_LINE = re.compile(r"^\s+(aead|enc|auth|auth-trunc|comp) ", re.MULTILINE)

pytestmark = pytest.mark.vpnlab_topology("topologies/l2tp-ipsec-nat.yml")


@pytest.fixture(scope="module")
def nat(vpnlab_lab: RunningLab) -> RunningLab:
    vpnlab_lab.check_all()  # alice to vpn1, bob and carol to vpn2, all at the same time
    return vpnlab_lab


ipsec_off = lab_fixture(TOPOLOGIES / "l2tp-ipsec-passthrough-off.yml")


l2tp_off = lab_fixture(TOPOLOGIES / "l2tp-ipsec-l2tp-off.yml")


wrong_psk = lab_fixture(TOPOLOGIES / "l2tp-ipsec-wrong-psk.yml")


def _server_drops(lab: RunningLab, server: str) -> int:
    """The server's counter of L2TP packets that arrived without IPsec (and were dropped)."""
    text = lab.exec(server, "$(cat /run/vpnlab/l2tp-ipsec.iptables) -L INPUT -v -n -x").output
    [line] = [line for line in text.splitlines() if "l2tp-ipsec drop unprotected L2TP" in line]
    assert "udp dpt:1701 policy match dir in pol none" in line, line
    return int(line.split()[0])


def _plain_l2tp_through_router(lab: RunningLab, server_wan: str) -> list[str]:
    """Router conntrack entries of UDP 1701 to the server: L2TP that crossed the router unprotected."""
    out = lab.exec("router", f"conntrack -L -p udp --dport 1701 -d {server_wan} 2>/dev/null").output
    return [line for line in out.splitlines() if "src=" in line]


def _inbound_spi(result) -> str:
    match = re.search(r"^\s+in\s+([0-9a-f]{8}),", result.evidence["client"]["swanctl --list-sas"], re.MULTILINE)
    assert match, result.evidence["client"]["swanctl --list-sas"]
    return match.group(1)


def test_up_through_nat_with_ipsec_evidence(nat: RunningLab) -> None:
    result = nat.check("alice", "l2tp-ipsec")
    assert_tunnel(result, "up")
    client, server = result.evidence["client"], result.evidence["server"]
    for words in (
        "ping 10.105.0.1 from 10.105.0.2 answered through l2tpsec0",
        "IPsec: IKEv1 SA (pre-shared key) and transport-mode CHILD_SA established",
        "NAT-T: the client found itself behind NAT, the server found the client behind NAT",
        "ESP encapsulated in UDP 4500",
        "no UDP 1701 through the router: L2TP travelled inside ESP",
        "L2TP call established",
        "MS-CHAPv2 authentication succeeded",
        "IPsec backend: kernel ESP",
    ):
        assert words in result.reason, (words, result.reason)
    packets = re.search(r"ESP SA counted (\d+) packets out, (\d+) in", result.reason)
    assert packets and int(packets.group(1)) > 0 and int(packets.group(2)) > 0, result.reason
    # the client's SAs: IKEv1, transport mode, UDP-encapsulated on port 4500
    sas = client["swanctl --list-sas"]
    assert "ESTABLISHED, IKEv1" in sas and "INSTALLED, TRANSPORT-in-UDP" in sas and "[4500]" in sas, sas
    assert "remote 203.0.113.10/32[udp/l2f]" in sas, sas  # only L2TP to the server is protected
    xfrm = client["xfrm state"]
    assert "proto esp" in xfrm and "mode transport" in xfrm, xfrm
    assert "encap type espinudp sport 4500 dport 4500" in xfrm, xfrm
    assert not KEY_LINE.search(xfrm), "keys must not be kept as evidence"
    # the server saw alice behind the router's address and protects its L2TP the same way
    assert f"remote 'alice' @ {ROUTER_WAN}[4500]" in server["swanctl --list-sas"], server["swanctl --list-sas"]
    assert "TRANSPORT-in-UDP" in server["swanctl --list-sas"]
    assert "remote host is behind NAT" in server["charon log"]
    # the router: IKE on UDP 500, then NAT-T on UDP 4500, masqueraded; no UDP 1701 at all
    conntrack = result.evidence["router_conntrack"]
    for port in (500, 4500):
        assert any(
            line.startswith("udp") and f"dport={port} " in line and f"dst={ROUTER_WAN} " in line for line in conntrack
        ), (port, conntrack)
    assert _plain_l2tp_through_router(nat, "203.0.113.10") == []
    assert _server_drops(nat, "vpn1") == 0
    assert result.evidence["router_drops"] == []


def test_two_clients_behind_one_nat_only_the_last_sa_gets_l2tp(nat: RunningLab) -> None:
    """What happens: both IKEv1 SAs are established, but on the server both CHILD_SAs have the
    same transport-mode selectors (203.0.113.1 UDP <-> 203.0.113.11 UDP 1701), so there is one
    outbound policy, and it names the SA installed last. That client's L2TP is answered; the
    other's ESP reaches the server and is decrypted, but nothing comes back through its SA (the
    server's answers go, encrypted, to the other client, whose xl2tpd drops them)."""
    results = {client: nat.check(client, "l2tp-ipsec") for client in ("bob", "carol")}
    sas = nat.exec("vpn2", "swanctl --list-sas").output
    peers = re.findall(rf"remote '(bob|carol)' @ {ROUTER_WAN}\[(\d+)\]", sas)
    assert sorted(p[0] for p in peers) == ["bob", "carol"], sas
    assert peers[0][1] != peers[1][1], f"the router keeps the two IKE_SAs apart by port: {peers}"
    assert sas.count("INSTALLED, TRANSPORT-in-UDP") == 2, sas
    # one outbound policy for both clients; its SPI is one client's inbound SPI: that client wins
    policy = nat.exec("vpn2", "ip xfrm policy list dir out").output
    spis = re.findall(r"proto esp spi 0x([0-9a-f]{8})", policy)
    assert len(spis) == 1, policy
    owner = {client: _inbound_spi(result) for client, result in results.items()}
    [winner] = [client for client, spi in owner.items() if spi == spis[0]]
    [loser] = [client for client in results if client != winner]
    assert_tunnel(results[winner], "up")
    if results[loser].observed == "down":  # what happens when both dial at once (check_all)
        assert "nothing came back through it" in results[loser].reason, results[loser].reason
    else:  # only if its ping was answered before the winner's SA took the policy over
        assert results[loser].observed == "up", results[loser].reason
    shared = f"the server holds IKEv1 SAs of 2 clients behind {ROUTER_WAN} (bob, carol)"
    assert shared in results[loser].reason and shared in results[winner].reason
    # now, whatever the timing was: only the winner's tunnel carries traffic
    assert nat.exec(winner, "ping -n -c 1 -W 2 10.105.1.1").exit_code == 0
    loser_ping = nat.exec(loser, "ping -n -c 1 -W 2 10.105.1.1")
    assert loser_ping.exit_code != 0, loser_ping.output
    assert _server_drops(nat, "vpn2") == 0  # the loser's L2TP did arrive protected


def test_down_when_the_router_drops_ipsec(ipsec_off: RunningLab) -> None:
    result = ipsec_off.check("alice", "l2tp-ipsec")
    assert_tunnel(result, "down")
    assert_decided_by_deadline(result)
    assert "router rule 'vpnlab: passthrough ipsec off (udp/500)' (FORWARD) dropped" in result.reason, result.reason
    assert "IKEv1 Main Mode sent" in result.reason and "without an answer from the server" in result.reason
    assert any("passthrough ipsec off (udp/500)" in drop for drop in result.evidence["router_drops"])
    assert result.evidence["router_conntrack"] == []
    # the client never dialled L2TP without IPsec, so nothing reached the server's xl2tpd
    assert "Connecting to host" not in result.evidence["client"]["xl2tpd"]
    assert _server_drops(ipsec_off, "vpn1") == 0


def test_plain_l2tp_passes_the_router_that_drops_ipsec(ipsec_off: RunningLab) -> None:
    result = ipsec_off.check("alice", "l2tp")
    assert_tunnel(result, "up")
    assert result.evidence["router_drops"] == []


def test_up_with_only_l2tp_passthrough_off(l2tp_off: RunningLab) -> None:
    """The router drops UDP 1701, and L2TP/IPsec comes up anyway: behind NAT its L2TP is
    inside ESP in UDP 4500, so the rule never sees a packet of it."""
    result = l2tp_off.check("alice", "l2tp-ipsec")
    assert_tunnel(result, "up")
    assert "no UDP 1701 through the router: L2TP travelled inside ESP" in result.reason, result.reason
    assert "ESP encapsulated in UDP 4500" in result.reason
    assert result.evidence["router_drops"] == []
    rules = l2tp_off.exec("router", "iptables -L FORWARD -v -n -x").output
    [rule] = [line for line in rules.splitlines() if "passthrough l2tp off (udp/1701)" in line]
    assert "udp dpt:1701" in rule and rule.split()[2] == "DROP", rule
    assert int(rule.split()[0]) == 0, f"the router's UDP 1701 rule counted packets: {rule}"
    assert _plain_l2tp_through_router(l2tp_off, "203.0.113.10") == []


def test_wrong_psk_fallback_to_plain_l2tp_is_not_up(wrong_psk: RunningLab) -> None:
    result = wrong_psk.check("mallory", "l2tp-ipsec")
    assert_tunnel(result, "down")
    assert_decided_by_deadline(result)
    for words in (
        "the server could not decrypt the client's Main Mode message 5 (identity and hash): the pre-shared keys differ",
        "the client fell back to plain L2TP",
        "router conntrack holds UDP 1701 to the server: L2TP crossed the router without IPsec",
    ):
        assert words in result.reason, (words, result.reason)
    dropped = re.search(r"the server dropped (\d+) unprotected L2TP packets", result.reason)
    assert dropped and int(dropped.group(1)) > 0, result.reason
    assert _server_drops(wrong_psk, "vpn") >= int(dropped.group(1))
    assert _plain_l2tp_through_router(wrong_psk, "203.0.113.10"), "the fallback's plain L2TP crossed the router"
    # the server's xl2tpd never heard of it, and no ESP SA exists
    assert "Connection established" not in result.evidence["server"]["log"]
    assert result.evidence["client"]["xfrm state"].strip() == ""
    assert "dialling plain L2TP anyway" in result.evidence["client"]["pppd"]
