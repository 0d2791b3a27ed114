"""IKEv2 through the NAT router on both IPsec back ends: kernel-libipsec on the host engine
(this host's kernel has no ESP) and kernel ESP in a User-Mode Linux guest.

Each lab comes up once per module and runtime; its tunnels are checked all at once
(``check_all``), so two LAN clients really do negotiate with one server at the same time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.pytest_plugin import RunningLab, Runtimes, assert_tunnel, lab_from
from .timing import assert_decided_by_deadline
from lab.runtime.uml import uml_available

HERE = Path(__file__).parent
NAT = HERE / "topologies" / "ikev2-nat.yml"  # alice+bob -> vpn1 at once; alice -> vpn2 too
BLOCKED = HERE / "topologies" / "ikev2-blocked.yml"  # passthrough ipsec: false
UML_USABLE, UML_WHY = uml_available()
RUNTIMES = [
    "docker",
    pytest.param("uml", marks=pytest.mark.skipif(not UML_USABLE, reason=f"User-Mode Linux unavailable: {UML_WHY}")),
]
ROUTER_WAN = "203.0.113.1"


@pytest.fixture(scope="module", params=RUNTIMES)
def nat_lab(request: pytest.FixtureRequest, vpnlab_runtimes: Runtimes) -> Iterator[RunningLab]:
    with lab_from(request, vpnlab_runtimes, NAT, runtime=request.param, check_all=True) as lab:
        yield lab


@pytest.fixture(scope="module", params=RUNTIMES)
def blocked_lab(request: pytest.FixtureRequest, vpnlab_runtimes: Runtimes) -> Iterator[RunningLab]:
    with lab_from(request, vpnlab_runtimes, BLOCKED, runtime=request.param, check_all=True) as lab:
        yield lab


def _kernel_esp(lab: RunningLab) -> bool:
    return lab.plan.environment.esp


def test_ikev2_up_through_nat_with_nat_t_and_backend(nat_lab: RunningLab) -> None:
    result = nat_lab.check("alice", "ikev2", "vpn1")
    assert_tunnel(result, "up")
    evidence, client, server = result.evidence, result.evidence["client"], result.evidence["server"]
    # the ping left from the virtual IP and was answered through the tunnel
    vip = re.search(r"ping 10\.106\.0\.1 from (10\.106\.0\.\d+) answered", result.reason)
    assert vip, result.reason
    # which back end, said by the result and by the daemon's own plugin list
    if _kernel_esp(nat_lab):
        assert "IPsec backend: kernel ESP" in result.reason
        assert "kernel-libipsec" not in client["backend"] and "kernel-netlink" in client["backend"]
        # policy-based: the kernel holds ESP states, UDP-encapsulated (NAT-T)
        assert "proto esp" in client["xfrm state"] and "encap type espinudp sport 4500 dport 4500" in client["xfrm state"]
        assert f"{vip.group(1)}/32" in client["addresses"]  # the virtual IP sits on eth0
    else:
        assert "IPsec backend: kernel-libipsec" in result.reason
        assert "kernel-libipsec kernel-netlink" in client["backend"]
        assert "ipsec0" in client["interface"] and f"{vip.group(1)}/32" in client["addresses"]
    # NAT-T on both ends: ESP in UDP 4500, the client knows it is behind NAT, the server sees the router
    assert "TUNNEL-in-UDP" in client["swanctl --list-sas"] and "ESTABLISHED" in client["swanctl --list-sas"]
    assert "[4500]" in client["swanctl --list-sas"]
    assert re.search(rf"remote 'alice' @ {ROUTER_WAN}\[\d+\] \[{re.escape(vip.group(1))}\]", server["swanctl --list-sas"])
    assert "TUNNEL-in-UDP" in server["swanctl --list-sas"]
    assert "local host is behind NAT" in client["charon log"]
    assert "remote host is behind NAT" in server["charon log"]
    assert "NAT-T: the client found itself behind NAT" in result.reason and "the server found the client behind NAT" in result.reason
    # the router's conntrack: NAT-T on udp/4500 masqueraded to its WAN address; the udp/500 entry of
    # IKE_SA_INIT (two packets) lives 30 s, so in a slow guest it may be gone when evidence is read:
    # if there, it is masqueraded too, and the server saw IKE_SA_INIT arrive from the router on 500
    conntrack = evidence["router_conntrack"]
    assert any(line.startswith("udp") and "dport=4500 " in line and f"dst={ROUTER_WAN} " in line for line in conntrack), conntrack
    assert all(f"dst={ROUTER_WAN} " in line for line in conntrack if line.startswith("udp") and "dport=500 " in line)
    assert re.search(rf"received packet: from {ROUTER_WAN}\[\d+\] to 203\.0\.113\.10\[500\]", server["charon log"]), server["charon log"]


def test_two_clients_behind_one_nat_reach_one_server_at_once(nat_lab: RunningLab) -> None:
    """What happens: both come up. The router keeps the first client's ports (500, 4500) and
    rewrites the second's; the server holds two IKE_SAs from the router's one address on two
    ports, each client with its own virtual IP."""
    alice, bob = nat_lab.check("alice", "ikev2", "vpn1"), nat_lab.check("bob", "ikev2", "vpn1")
    assert_tunnel(alice, "up")
    assert_tunnel(bob, "up")
    vips = {re.search(r"from (\S+) answered", r.reason).group(1) for r in (alice, bob)}
    assert len(vips) == 2, vips
    sas = nat_lab.exec("vpn1", "swanctl --list-sas").output
    peers = re.findall(rf"remote '(alice|bob)' @ {ROUTER_WAN}\[(\d+)\]", sas)
    assert sorted(p[0] for p in peers) == ["alice", "bob"], sas
    assert peers[0][1] != peers[1][1], f"both IKE_SAs on one NAT port: {peers}"
    # the router rewrote one client's NAT-T source port (the reply goes to another port than 4500)
    ports = [re.findall(r"dport=(\d+)", line) for r in (alice, bob) for line in r.evidence["router_conntrack"]]
    reply_ports = [reply for original, reply in ports if original == "4500"]
    assert len(reply_ports) == 2 and len(set(reply_ports)) == 2, ports


def test_one_charon_carries_several_ipsec_connections(nat_lab: RunningLab) -> None:
    """alice has IKEv2 tunnels to vpn1 and vpn2, checked in parallel: one charon, two connections."""
    assert_tunnel(nat_lab.check("alice", "ikev2", "vpn2"), "up")
    assert_tunnel(nat_lab.check("alice", "openvpn-udp", "vpn2"), "up")
    for node in ("alice", "vpn1", "vpn2"):
        assert nat_lab.exec(node, "pgrep -c -x charon").output.strip() == "1", node
    conns = nat_lab.exec("alice", "swanctl --list-conns").output
    assert "ikev2-vpn1:" in conns and "ikev2-vpn2:" in conns
    sas = nat_lab.exec("alice", "swanctl --list-sas").output
    assert sas.count("ESTABLISHED") == 2, sas


def test_ikev2_down_when_the_router_drops_ipsec(blocked_lab: RunningLab) -> None:
    result = blocked_lab.check("carol", "ikev2", "vpn")
    assert_tunnel(result, "down")
    assert_decided_by_deadline(result)
    assert "router rule 'vpnlab: passthrough ipsec off (udp/500)' (FORWARD) dropped" in result.reason, result.reason
    assert "IKE_SA_INIT sent" in result.reason and "without an answer from the server" in result.reason
    assert result.evidence["router_drops"] and not any("dport=4500" in c for c in result.evidence["router_conntrack"])
    # the router itself works: OpenVPN over UDP passes
    assert_tunnel(blocked_lab.check("carol", "openvpn-udp", "vpn"), "up")
