"""OpenVPN moved to another port (tunnel option ``port``) through a router that lets only HTTPS
and DNS out (the strict profile): on its own port 1194 it is dropped by a rule the reason names;
on TCP 443 and UDP 53 it comes up, and the router's conntrack shows the moved port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .scenario_run import run_topology

REPO = Path(__file__).resolve().parent.parent.parent
PORT_443 = REPO / "topologies" / "openvpn-port-443.yml"


def test_openvpn_on_443_and_53_passes_where_1194_is_dropped(vpnlab_session, tmp_path: Path) -> None:
    proc, data = run_topology(PORT_443, tmp_path / "result.json", "docker")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tunnels: dict[str, dict[str, Any]] = {f"{t['server']}/{t['protocol']}": t for t in data["tunnels"]}
    assert {name: t["observed"] for name, t in tunnels.items()} == {
        "office/openvpn-tcp": "down", "office/openvpn-udp": "down", "https/openvpn-tcp": "up", "https/openvpn-udp": "up",
    }
    # the default port: dropped by the strict rule that names it, counted during the check
    for proto in ("tcp", "udp"):
        down = tunnels[f"office/openvpn-{proto}"]
        assert f"rule 'vpnlab: strict: not allowed out ({proto}/1194)' (FORWARD) dropped" in down["reason"], down["reason"]
    # the moved port: allowed out, and the conntrack evidence is of that port, not 1194's
    for proto, port in (("tcp", 443), ("udp", 53)):
        up = tunnels[f"https/openvpn-{proto}"]
        entries = up["evidence"]["router_conntrack"]
        assert entries and all(f"dport={port} " in e and e.startswith(proto) for e in entries), entries
        assert "answered through" in up["reason"] and "Initialization Sequence Completed" in up["reason"], up["reason"]
