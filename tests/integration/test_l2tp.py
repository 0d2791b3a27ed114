"""Plain L2TP (xl2tpd + pppd, UDP 1701) through the NAT router: up without any helper, also for
two clients at once; down when the router's L2TP passthrough is off, which leaves PPTP up.

PPP needs a kernel with ppp_generic and l2tp_ppp: on a host without them these labs
run in a User-Mode Linux guest (--vpnlab-runtime auto).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.pytest_plugin import RunningLab, assert_tunnel, lab_fixture
from .timing import assert_decided_by_deadline

TOPOLOGIES = Path(__file__).parent / "topologies"

pytestmark = pytest.mark.vpnlab_topology("topologies/l2tp-two-clients.yml")


@pytest.fixture(scope="module")
def two_clients(vpnlab_lab: RunningLab) -> RunningLab:
    vpnlab_lab.check_all()  # alice and bob dial at the same time
    return vpnlab_lab


passthrough_off = lab_fixture(TOPOLOGIES / "l2tp-passthrough-off.yml")


@pytest.mark.parametrize("client", ["alice", "bob"])
def test_l2tp_up_through_nat(two_clients: RunningLab, client: str) -> None:
    result = two_clients.check(client, "l2tp")
    assert_tunnel(result, "up")
    for words in ("L2TP control connection (UDP 1701) established", "MS-CHAPv2 authentication succeeded"):
        assert words in result.reason, (words, result.reason)
    # the server asked for MS-CHAPv2, not CHAP-MD5 (xl2tpd's "require chap" would force MD5)
    assert "<auth chap MS-v2>" in result.evidence["client"]["auth"], result.evidence["client"]
    [entry] = result.evidence["router_conntrack"]
    assert entry.startswith("udp") and "dport=1701" in entry and "dst=203.0.113.1 " in entry, entry


def test_two_clients_share_the_router_on_distinct_ports(two_clients: RunningLab) -> None:
    # Both clients send from UDP 1701; the router masquerades one of them to another port,
    # and the server's xl2tpd answers each on its own.
    ports = set()
    for client in ("alice", "bob"):
        result = two_clients.check(client, "l2tp")
        assert_tunnel(result, "up")
        [entry] = result.evidence["router_conntrack"]
        ports.add(re.findall(r"dport=(\d+)", entry)[-1])
    assert len(ports) == 2, ports


def test_l2tp_down_with_passthrough_off(passthrough_off: RunningLab) -> None:
    result = passthrough_off.check("alice", "l2tp")
    assert_tunnel(result, "down")
    assert_decided_by_deadline(result)  # xl2tpd retries past it
    assert any("passthrough l2tp off (udp/1701)" in drop for drop in result.evidence["router_drops"]), result.evidence
    assert "passthrough l2tp off" in result.reason and "no answer from the server" in result.reason, result.reason
    assert result.evidence["router_conntrack"] == []


def test_pptp_unaffected_by_l2tp_passthrough_off(passthrough_off: RunningLab) -> None:
    result = passthrough_off.check("alice", "pptp")
    assert_tunnel(result, "up")
    assert result.evidence["router_drops"] == []
