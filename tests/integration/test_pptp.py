"""PPTP through the NAT router: up with the pptp conntrack helper, down without it or with
its passthrough off, each time with the reason in words and the evidence behind it.

PPP needs a kernel with ppp_generic: on a host without it these labs run in a
User-Mode Linux guest (--vpnlab-runtime auto). Three labs, each brought up once
and all its tunnels checked at once.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.pytest_plugin import RunningLab, assert_tunnel, lab_fixture

from .timing import assert_decided_by_deadline

TOPOLOGIES = Path(__file__).parent / "topologies"

pytestmark = pytest.mark.vpnlab_topology("topologies/pptp-helper.yml")


@pytest.fixture(scope="module")
def with_helper(vpnlab_lab: RunningLab) -> RunningLab:
    vpnlab_lab.check_all()  # alice and bob dial at the same time
    return vpnlab_lab


no_helper = lab_fixture(TOPOLOGIES / "pptp-no-helper.yml")


passthrough_off = lab_fixture(TOPOLOGIES / "pptp-passthrough-off.yml")


def gre_lines(result) -> list[str]:
    return [line for line in result.evidence["router_conntrack"] if line.startswith("gre")]


@pytest.mark.parametrize("client", ["alice", "bob"])
def test_pptp_up_through_nat_with_helper(with_helper: RunningLab, client: str) -> None:
    result = with_helper.check(client, "pptp")
    assert_tunnel(result, "up")
    control = [line for line in result.evidence["router_conntrack"] if "dport=1723" in line]
    assert control and all("helper=pptp" in line for line in control), result.evidence["router_conntrack"]
    assert gre_lines(result) and all("helper=pptp" in line for line in gre_lines(result)), result.evidence
    assert "MS-CHAPv2 authentication succeeded" in result.reason, result.reason
    # MPPE-128 where the kernel has ppp_mppe (the UML guest loads it): the client log says which
    pppd = result.evidence["client"]["pppd"]
    assert "MPPE 128-bit stateless compression enabled" in pppd or "MPPE not offered" in pppd, pppd


def gre_keys(line: str) -> tuple[str, str]:
    """(the client's call ID as sent, the key the server's GRE comes back with)."""
    keys = re.findall(r"(?:srckey|dstkey)=(0x[0-9a-f]+)", line)
    return keys[0], keys[3]


def test_two_clients_at_once_both_up_with_call_ids_rewritten(with_helper: RunningLab) -> None:
    # What really happens with nf_nat_pptp loaded: both calls come up at the same time, and
    # the helper rewrites each client's call ID on the WAN side (as ports are masqueraded),
    # so the server's GRE for each call finds its way back to the right client.
    alice, bob = with_helper.check("alice", "pptp"), with_helper.check("bob", "pptp")
    assert_tunnel(alice, "up")
    assert_tunnel(bob, "up")
    for result in (alice, bob):
        [gre] = gre_lines(result)
        [control] = [line for line in result.evidence["router_conntrack"] if "dport=1723" in line]
        sent, back = gre_keys(gre)
        masqueraded_port = int(re.findall(r"dport=(\d+)", control)[-1])
        # nf_nat_pptp replaces the client's call ID by its masqueraded TCP source port
        assert int(back, 16) == masqueraded_port and int(sent, 16) != masqueraded_port, (gre, control)
    addresses = {r.evidence["client"]["addresses"].split()[2] for r in (alice, bob)}
    assert len(addresses) == 2, addresses  # pptpd gave each call its own address
    assert alice.evidence["server"]["syslog"].count("Starting call") >= 2, alice.evidence["server"]


def test_pptp_down_without_helper_says_why(no_helper: RunningLab) -> None:
    result = no_helper.check("alice", "pptp")
    assert_tunnel(result, "down")
    assert "pppd exited" in result.reason  # pppd gave up; the check did not wait for the deadline
    for words in (
        "TCP 1723 established",
        "GRE from the server not translated back",
        "'vpnlab: input gre from wan not tied to a call' dropped",
        "LCP timed out",
        "no pptp helper on the router",
    ):
        assert words in result.reason, (words, result.reason)
    conntrack = result.evidence["router_conntrack"]
    assert not any("helper=pptp" in line for line in conntrack), conntrack
    assert any("[UNREPLIED]" in line for line in gre_lines(result)), conntrack
    assert "LCP: timeout sending Config-Requests" in result.evidence["client"]["pppd"]
    assert "Outgoing call established" in result.evidence["client"]["syslog"]


def test_pptp_down_with_passthrough_off(passthrough_off: RunningLab) -> None:
    result = passthrough_off.check("alice", "pptp")
    assert_tunnel(result, "down")
    assert_decided_by_deadline(result)
    assert any("passthrough pptp off (tcp/1723)" in drop for drop in result.evidence["router_drops"]), result.evidence
    assert "passthrough pptp off" in result.reason and "no TCP 1723 connection" in result.reason, result.reason


def test_l2tp_unaffected_by_pptp_passthrough_off(passthrough_off: RunningLab) -> None:
    result = passthrough_off.check("alice", "l2tp")
    assert_tunnel(result, "up")
    assert result.evidence["router_drops"] == []
