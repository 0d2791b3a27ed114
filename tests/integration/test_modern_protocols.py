"""WireGuard and OpenVPN (UDP, TCP) through the NAT router: up, with evidence, on real daemons."""

from __future__ import annotations

import pytest

from lab.pytest_plugin import RunningLab, assert_tunnel

pytestmark = pytest.mark.vpnlab_topology("topologies/all-modern.yml")

TUNNELS = [
    ("alice", "wireguard", "vpn1"),
    ("alice", "openvpn-udp", "vpn1"),
    ("alice", "openvpn-tcp", "vpn1"),
    ("bob", "wireguard", "vpn1"),
    ("bob", "wireguard", "vpn2"),
    ("bob", "openvpn-udp", "vpn2"),
]


@pytest.fixture(scope="module")
def checked(vpnlab_lab: RunningLab) -> RunningLab:
    vpnlab_lab.check_all()  # all at once, in parallel
    return vpnlab_lab


@pytest.mark.parametrize("client,protocol,server", TUNNELS, ids=lambda v: v)
def test_tunnel_comes_up_through_nat(checked: RunningLab, client: str, protocol: str, server: str) -> None:
    result = checked.check(client, protocol, server)
    assert_tunnel(result, "up")
    # NAT evidence: the router's conntrack entry is translated to its own WAN address.
    assert any("dst=203.0.113.1 " in line for line in result.evidence["router_conntrack"]), result.evidence
    assert "UP" in result.evidence["client"]["interface"]


def test_wireguard_evidence_shows_handshake(checked: RunningLab) -> None:
    result = checked.check("alice", "wireguard", "vpn1")
    assert "latest handshake" in result.evidence["client"]["wg show"]


def test_openvpn_log_shows_completion(checked: RunningLab) -> None:
    result = checked.check("alice", "openvpn-tcp", "vpn1")
    assert "Initialization Sequence Completed" in result.evidence["client"]["client log"]


@pytest.mark.parametrize("protocol,done", [("wireguard", "up with"), ("openvpn-udp", "Initialization Sequence Completed")])
def test_a_second_check_starts_again_and_its_evidence_is_its_own(checked: RunningLab, protocol: str, done: str) -> None:
    # the client's daemon ("[w]": pgrep must not count the shell that runs it)
    daemon = "[w]ireguard-go wg0" if protocol == "wireguard" else "[o]penvpn --config .*openvpn-udp-vpn1.conf"
    first = checked.check("alice", protocol, "vpn1")
    before = checked.exec("alice", f"pgrep -f '{daemon}'").output.split()
    again = checked.check("alice", protocol, "vpn1", again=True)
    after = checked.exec("alice", f"pgrep -f '{daemon}'").output.split()
    assert_tunnel(first, "up")
    assert_tunnel(again, "up")  # not "error: the start command failed" (its interface existed)
    log = again.evidence["client"]["client log"]
    assert log.count(done) == 1, log  # this attempt's lines only
    if "kernel WireGuard" not in log:  # a daemon: the first one ended, one new one carries the tunnel
        assert len(before) == 1 and len(after) == 1 and before != after, (before, after)


def test_servers_cannot_reach_the_lan(checked: RunningLab) -> None:
    host = checked.host("vpn1")
    routes = host.check_output("ip route")
    assert "192.168.100." not in routes and "default" not in routes
    assert host.run("ping -c 1 -W 1 192.168.100.10").rc != 0


def test_clients_route_only_through_the_router(checked: RunningLab) -> None:
    host = checked.host("alice")
    assert host.check_output("ip route show default").startswith("default via 192.168.100.1 dev eth0")
    ipv4 = [a for a in host.interface("eth0").addresses if "." in a]
    assert ipv4 == ["192.168.100.10"]


def test_router_ruleset_is_visible_with_iptables_save(checked: RunningLab) -> None:
    saved = checked.exec("router", "iptables-save").output
    assert "-j MASQUERADE" in saved and "vpnlab: forward lan to wan" in saved
