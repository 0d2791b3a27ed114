"""Scenario 4, double NAT (topologies/scenario-double-nat.yml), on the host's engine: which
protocols pass two NAT routers, and which router's switch stops which (docs/scenarios.md).

WireGuard, OpenVPN and IKEv2 run on the host kernel; PPTP and L2TP need PPP (the UML runtime)
and are not part of this run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .scenario_run import run_topology

REPO = Path(__file__).resolve().parent.parent.parent
DOUBLE_NAT = REPO / "topologies" / "scenario-double-nat.yml"
MIDDLE_ROUTER_ADDRESS = "198.51.100.2"  # the router's wan0 on the middle segment: what the upstream sees


def verdicts(step: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["tunnel"]: v for v in step["verdicts"]}


def test_double_nat_which_router_stops_which_protocol(vpnlab_session, tmp_path: Path) -> None:
    proc, data = run_topology(DOUBLE_NAT, tmp_path / "result.json", "docker")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert data["passed"] is True and data["runtime"] == "docker"

    steps = data["steps"]
    assert [s["kind"] for s in steps] == ["check", "upstream", "check", "upstream", "check", "upstream", "router", "check"]
    assert all(s["passed"] for s in steps)
    assert [(s["node"], s["changed"]) for s in steps if s["kind"] in ("upstream", "router")] == [
        ("isp", "passthrough ipsec off"),
        ("isp", "passthrough ipsec on; block udp/51820 added; block udp/1194 added"),
        ("isp", "block udp/51820 removed; block udp/1194 removed"),
        ("router", "passthrough ipsec off"),
    ]

    # both routers open: every protocol passes two NATs, and each router tracks the flow;
    # the upstream router sees it from the router's middle address (translated once already)
    tunnels = {f"{t['client']}/{t['protocol']}": t for t in data["tunnels"]}
    for name in ("alice/wireguard", "bob/openvpn-udp", "carol/ikev2"):
        first = tunnels[name]
        assert first["observed"] == "up", first["reason"]
        assert first["evidence"]["router_conntrack"], name
        assert all(f"src={MIDDLE_ROUTER_ADDRESS} " in line for line in first["evidence"]["upstream_conntrack"]), name
        assert first["evidence"]["upstream_conntrack"], name
        assert "upstream router 'isp' conntrack holds" in first["reason"]
    assert "the client found itself behind NAT" in tunnels["carol/ikev2"]["reason"]  # NAT-T, through both

    # IPsec passthrough off on the upstream only: IKEv2 stops there although the router passes it
    ipsec_off_upstream = verdicts(steps[2])
    assert ipsec_off_upstream["alice/wireguard"]["observed"] == ipsec_off_upstream["bob/openvpn-udp"]["observed"] == "up"
    ikev2 = ipsec_off_upstream["carol/ikev2"]
    assert ikev2["observed"] == "down"
    assert "upstream router 'isp' rule 'vpnlab: passthrough ipsec off (udp/4500)'" in ikev2["reason"]
    assert ikev2["evidence"]["upstream_drops"] and "router_drops" not in ikev2["evidence"]

    # blocks on the upstream: WireGuard and OpenVPN stop, IKEv2 is back with the same SA, and a
    # tunnel first started behind the block is decided down from the upstream's counters early
    blocked = verdicts(steps[4])
    assert blocked["carol/ikev2"]["observed"] == "up"
    for name, port in (("alice/wireguard", 51820), ("bob/openvpn-udp", 1194)):
        assert blocked[name]["observed"] == "down"
        assert f"upstream router 'isp' rule 'vpnlab: block udp/{port}'" in blocked[name]["reason"]
    dave = blocked["dave/openvpn-udp"]
    assert dave["observed"] == "down" and dave["seconds"] < 15  # OpenVPN's deadline, not waited for
    assert "not waiting for the 15 s deadline" in dave["reason"]
    assert "upstream router 'isp' rule 'vpnlab: block udp/1194'" in dave["reason"]
    assert tunnels["dave/openvpn-udp"]["evidence"]["upstream_drops"]

    # the same switch on the router: IKEv2 stops at the router, the upstream drops nothing
    ipsec_off_router = verdicts(steps[7])
    assert ipsec_off_router["alice/wireguard"]["observed"] == ipsec_off_router["bob/openvpn-udp"]["observed"] == "up"
    ikev2 = ipsec_off_router["carol/ikev2"]
    assert ikev2["observed"] == "down"
    assert "router rule 'vpnlab: passthrough ipsec off (udp/4500)'" in ikev2["reason"]
    assert "upstream router 'isp' rule" not in ikev2["reason"] and ikev2["evidence"]["upstream_drops"] == []

    left = vpnlab_session.client.containers.list(all=True, filters={"label": "vpnlab.lab=scenario-double-nat"})
    assert left == []  # the run tore its lab down (the upstream router too)


DOUBLE_NAT_PPTP = REPO / "topologies" / "scenario-double-nat-pptp.yml"


def test_double_nat_pptp_needs_the_helper_on_both_routers(vpnlab_session, tmp_path: Path) -> None:
    """PPP: the UML runtime here (auto picks it on a host kernel without PPP); minutes, not seconds."""
    proc, data = run_topology(DOUBLE_NAT_PPTP, tmp_path / "result.json", "auto", timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert data["passed"] is True
    steps = data["steps"]
    assert [s["kind"] for s in steps] == ["check", "upstream", "check"]
    assert steps[1]["node"] == "isp" and steps[1]["changed"] == "helper pptp added"

    alice = verdicts(steps[0])["alice/pptp"]
    assert alice["observed"] == "down"
    assert "upstream router 'isp'" in alice["reason"]  # where the call's GRE died
    assert not any("helper=pptp" in line for line in alice["evidence"]["upstream_conntrack"])
    assert "upstream router 'isp' conntrack shows tcp/1723, gre from 198.51.100.2 to 203.0.113.10 unreplied" in alice["reason"]
    assert "the upstream router 'isp' has no pptp helper on it" in alice["reason"]

    bob = verdicts(steps[2])["bob/pptp"]
    assert bob["observed"] == "up", bob["reason"]
    assert any(line.startswith("gre") and "helper=pptp" in line for line in bob["evidence"]["upstream_conntrack"])
