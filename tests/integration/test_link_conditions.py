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


def interface_to(lab: RunningLab, node: str, address: str) -> tuple[str, str]:
    """(interface name, its MAC address) a node uses to reach an address of its own segment."""
    dev = re.search(r" dev (\S+)", lab.exec(node, f"ip -o route get {address}").output)
    assert dev, f"{node} has no route to {address}"
    return dev.group(1), lab.exec(node, f"cat /sys/class/net/{dev.group(1)}/address").output.strip()


def netem_dropped(lab: RunningLab, node: str, dev: str) -> int:
    """The packets the netem qdisc on a node's interface has dropped so far (its own counter)."""
    out = lab.exec(node, f"tc -s qdisc show dev {dev}").output
    dropped = re.search(r"qdisc netem .*?\(dropped (\d+)", out, re.S)
    assert dropped, out
    return int(dropped.group(1))


def test_loss_drops_about_its_share(vpnlab_lab: RunningLab) -> None:
    fay = vpnlab_lab.exec("fay", "ip -o -4 address show dev eth0").output.split()[3].split("/")[0]
    fay_dev, fay_mac = interface_to(vpnlab_lab, "fay", ROUTER_LAN)
    router_dev, router_mac = interface_to(vpnlab_lab, "router", fay)
    # Fixed neighbour entries on both ends: at 50 % loss an ARP exchange fails one time in eight
    # (three probes lost) and takes every queued ping with it, which is ARP's loss, not netem's share
    for node, address, mac, dev in (("fay", ROUTER_LAN, router_mac, fay_dev), ("router", fay, fay_mac, router_dev)):
        fixed = vpnlab_lab.exec(node, f"ip neigh replace {address} lladdr {mac} dev {dev} nud permanent")
        assert fixed.exit_code == 0, fixed.output
    before = netem_dropped(vpnlab_lab, "fay", fay_dev)
    # 60 pings at 50 % loss: fewer than 12 or more than 48 lost is a one-in-a-million draw
    _, lost = ping(vpnlab_lab, "fay", ROUTER_LAN, 60, 0.05)
    assert 12 <= lost <= 48, lost
    # and the pings lost are netem's drops: its counter grew by at least as many
    assert netem_dropped(vpnlab_lab, "fay", fay_dev) - before >= lost


def test_the_tunnel_comes_up_over_the_slow_path(vpnlab_lab: RunningLab) -> None:
    result = vpnlab_lab.check("erin", "wireguard")
    assert_tunnel(result, "up")
    assert "latest handshake" in result.evidence["client"]["wg show"]
