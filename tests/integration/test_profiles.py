"""Router profiles in real labs, cheaply: the control row (routed: no NAT) and a strict guest
network, each a reduced protocol set. The whole profile x protocol matrix is `vpnlab matrix`'s.

routed: the servers have a route back to the LAN (so un-translated tunnels come up) and PPTP
stays down because nothing ties the server's GRE to the call (PPP: a UML guest where the host
lacks it). strict: only what allow_out names goes out, and the drop's counter is the reason.
"""

from __future__ import annotations

from pathlib import Path

from lab.pytest_plugin import RunningLab, assert_tunnel, lab_fixture

TOPOLOGIES = Path(__file__).parent / "topologies"

routed = lab_fixture(TOPOLOGIES / "profile-routed.yml")
strict = lab_fixture(TOPOLOGIES / "profile-strict.yml")


def test_routed_tunnel_up_without_translation(routed: RunningLab) -> None:
    result = routed.check("alice", "wireguard")
    assert_tunnel(result, "up")
    [entry] = result.evidence["router_conntrack"]
    # no NAT: the server answers the client's own LAN address, through its route back
    assert entry.count("192.168.100.10") == 2, entry


def test_routed_pptp_down_because_gre_is_not_matched_to_a_call(routed: RunningLab) -> None:
    result = routed.check("alice", "pptp")
    assert_tunnel(result, "down")
    assert "TCP 1723 established and the call set up" in result.reason, result.reason
    assert "GRE from the server not matched to a call (no pptp helper)" in result.reason, result.reason
    assert "'vpnlab: forward default drop' (FORWARD) dropped" in result.reason, result.reason
    assert "not translated back" not in result.reason and "no route back" not in result.reason, result.reason


def test_strict_drops_what_is_not_allowed_out_and_says_so(strict: RunningLab) -> None:
    result = strict.check("alice", "wireguard")
    assert_tunnel(result, "down")
    assert "router rule 'vpnlab: strict: not allowed out (udp/51820)' (FORWARD) dropped" in result.reason, result.reason
    assert result.evidence["router_drops"], result.evidence


def test_strict_lets_out_what_allow_out_names(strict: RunningLab) -> None:
    result = strict.check("alice", "openvpn-udp")
    assert_tunnel(result, "up")
    assert result.evidence["router_drops"] == [], result.evidence
