"""Link conditions on a real lab: the delay and loss netem adds to what a node sends show in
what its pings measure, and the tunnel still comes up over the slow path.

netem is a kernel feature the host may lack (lab.kernel.features): --vpnlab-runtime auto then
runs this lab in the User-Mode Linux guest, as the CLI would."""

from __future__ import annotations

import re

import pytest

from lab.pytest_plugin import RunningLab, assert_tunnel

pytestmark = pytest.mark.vpnlab_topology("topologies/link-netem.yml")

SERVER_WAN = "203.0.113.10"
ROUTER_LAN = "192.168.100.1"


def ping(lab: RunningLab, node: str, address: str, count: int, interval: float) -> tuple[float, int]:
    """(min RTT in ms, packets lost of ``count``) of a ping inside the lab."""
    out = lab.exec(node, f"ping -n -q -c {count} -i {interval} -W 2 {address}").output
    sent = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    rtt = re.search(r"= ([\d.]+)/", out)
    assert sent, out
    return (float(rtt.group(1)) if rtt else float("inf")), int(sent.group(1)) - int(sent.group(2))


def test_the_delay_of_each_link_adds_up_in_the_round_trip(vpnlab_lab: RunningLab) -> None:
    # erin's 50 ms on the way out, then the router's 100 ms towards the WAN: the replies come back undelayed
    fastest, lost = ping(vpnlab_lab, "erin", SERVER_WAN, 4, 0.3)
    assert lost == 0 and fastest >= 150, (fastest, lost)
    # a client without link conditions pays the router's WAN delay only
    fastest, _ = ping(vpnlab_lab, "fay", SERVER_WAN, 20, 0.2)
    assert 100 <= fastest < 150, fastest
    qdisc = vpnlab_lab.exec("erin", "tc qdisc show dev eth0").output
    assert "netem" in qdisc and "delay 50ms" in qdisc, qdisc


def test_loss_drops_about_its_share(vpnlab_lab: RunningLab) -> None:
    # 60 pings at 50 % loss: fewer than 12 or more than 48 lost is a one-in-a-million draw
    _, lost = ping(vpnlab_lab, "fay", ROUTER_LAN, 60, 0.05)
    assert 12 <= lost <= 48, lost


def test_the_tunnel_comes_up_over_the_slow_path(vpnlab_lab: RunningLab) -> None:
    result = vpnlab_lab.check("erin", "wireguard")
    assert_tunnel(result, "up")
    assert "latest handshake" in result.evidence["client"]["wg show"]
