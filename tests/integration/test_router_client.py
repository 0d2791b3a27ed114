"""Scenario 2 on a real lab: the router itself as a PPTP client (User-Mode Linux: PPP needs a kernel
with ppp_generic). With the pptp helper attached for forwarded traffic only (OpenWrt's bug) a LAN
client's PPTP comes up and the router's own does not, the server's GRE dying at the router's
INPUT; a router step attaches the helper to local traffic too and the router's next call is up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.runtime.uml import uml_available

from .scenario_run import run_topology

REPO = Path(__file__).resolve().parent.parent.parent
SCENARIO = REPO / "topologies" / "scenario-router-client.yml"
UML_USABLE, UML_WHY = uml_available()
ROUTER_WAN = "203.0.113.1"
GRE_DROP = "INPUT: 'vpnlab: input gre from wan not tied to a call' dropped"
OUTPUT_HELPER = "-A OUTPUT -o wan0 -p tcp -m tcp --dport 1723 -m comment --comment \"vpnlab: helper pptp for the router itself\""


@pytest.mark.skipif(not UML_USABLE, reason=f"User-Mode Linux unavailable: {UML_WHY}")
def test_the_routers_own_pptp_needs_the_helper_on_local_traffic(vpnlab_session, tmp_path: Path) -> None:
    proc, data = run_topology(SCENARIO, tmp_path / "result.json", "uml", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert data["passed"] is True and data["runtime"] == "uml"
    tunnels = {(t["client"], t["server"]): t for t in data["tunnels"]}
    assert {key: t["observed"] for key, t in tunnels.items()} == {
        ("alice", "vpn"): "up", ("router", "vpn"): "down", ("router", "vpn2"): "up"}

    steps = data["steps"]
    assert [s["kind"] for s in steps] == ["check", "check", "router", "check"]
    assert all(s["passed"] for s in steps)

    # forwarded traffic has the helper: the LAN client's call is tracked by it
    alice = tunnels[("alice", "vpn")]
    assert any("helper=pptp" in line for line in alice["evidence"]["router_conntrack"])

    # the router's own call, helper for forwarded traffic only: no helper, GRE unreplied, dropped at INPUT
    own = tunnels[("router", "vpn")]
    entries = own["evidence"]["router_conntrack"]
    control = [line for line in entries if line.startswith("tcp") and "dport=1723" in line]
    gre = [line for line in entries if line.startswith("gre")]
    assert control and all(f"src={ROUTER_WAN}" in line and "helper=pptp" not in line for line in control)
    assert gre and all("[UNREPLIED]" in line for line in gre)
    drops = own["evidence"]["router_input_drops"]
    counted = re.fullmatch(r".* dropped (\d+) packets during this check", drops[0]) if len(drops) == 1 else None
    assert counted and drops[0].startswith(GRE_DROP) and int(counted.group(1)) > 0, drops
    assert "GRE from the server not tied to the router's own call" in own["reason"]
    assert "LCP timed out" in own["reason"]

    # the router step attaches the helper to local traffic, without touching conntrack
    change = steps[2]
    assert change["changed"] == "helpers for local traffic on"
    assert not any(line.startswith(OUTPUT_HELPER) for line in change["evidence"]["rules_before"])
    assert any(line.startswith(OUTPUT_HELPER) for line in change["evidence"]["rules_after"])

    # ... and the router's next call is tracked by the helper and comes up
    fixed = tunnels[("router", "vpn2")]
    assert any(line.startswith("tcp") and "helper=pptp" in line for line in fixed["evidence"]["router_conntrack"])
    assert any(line.startswith("gre") and "[UNREPLIED]" not in line for line in fixed["evidence"]["router_conntrack"])
    assert not any(drop.startswith(GRE_DROP) for drop in fixed["evidence"]["router_input_drops"])

    left = vpnlab_session.client.containers.list(all=True, filters={"label": "vpnlab.lab=scenario-router-client"})
    assert left == []  # the run tore its lab down
