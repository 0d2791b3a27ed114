"""The router's blocks take down exactly the tunnels that use the blocked port, quickly and with the reason."""

from __future__ import annotations

import re

import pytest

from lab.pytest_plugin import RunningLab, assert_tunnel

from .timing import assert_decided_by_drops

pytestmark = pytest.mark.vpnlab_topology("topologies/wireguard-blocked.yml")


def test_wireguard_down_when_its_port_is_blocked(vpnlab_lab: RunningLab) -> None:
    result = vpnlab_lab.check("carol", "wireguard")
    assert_tunnel(result, "down")
    assert any("block udp/51820" in line for line in result.evidence["router_drops"]), result.evidence
    assert "block udp/51820" in result.reason and "no WireGuard handshake" in result.reason
    assert_decided_by_drops(result)


def _dropped(lab: RunningLab) -> int:
    """The block rule's counter on the router, since its rules were loaded."""
    saved = lab.exec("router", "iptables -L FORWARD -v -n -x").output
    line = next(line for line in saved.splitlines() if "block udp/51820" in line)
    return int(line.split()[0])


def test_a_second_check_quotes_only_its_own_drops(vpnlab_lab: RunningLab) -> None:
    vpnlab_lab.check("carol", "wireguard")
    before = _dropped(vpnlab_lab)
    again = vpnlab_lab.check("carol", "wireguard", again=True)
    during = _dropped(vpnlab_lab) - before
    assert_tunnel(again, "down")
    quoted = re.search(r"'vpnlab: block udp/51820' \(FORWARD\) dropped (\d+) packets during this check", again.reason)
    assert quoted, again.reason
    assert before > 0 and 0 < int(quoted.group(1)) <= during, (before, during, again.reason)


def test_openvpn_tcp_unaffected(vpnlab_lab: RunningLab) -> None:
    assert_tunnel(vpnlab_lab.check("carol", "openvpn-tcp"), "up")


def test_home_office_example(vpnlab_factory) -> None:
    lab = vpnlab_factory("topologies/home-office.yml")
    results = {r.protocol: r for r in lab.check_all()}
    assert_tunnel(results["wireguard"], "up")
    assert_tunnel(results["openvpn-udp"], "down")
    assert "block udp/1194" in results["openvpn-udp"].reason
    assert_tunnel(results["openvpn-tcp"], "up")
    rules = lab.exec("router", "iptables-save -t raw").output
    assert "--helper pptp" in rules
