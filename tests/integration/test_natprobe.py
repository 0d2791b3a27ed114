"""The RFC 5780 NAT probe against real router configurations on the host engine (plain UDP:
no PPP or ESP needed), each lab with the stun node and one WireGuard tunnel."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lab.natprobe import measure_nat
from lab.topology.model import Router


def topology(name: str, router: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "nat_probe": True,
        "router": router,
        "servers": [{"name": "vpn", "protocols": ["wireguard"]}],
        "clients": [{"name": "alice"}],
        "tunnels": [{"client": "alice", "server": "vpn", "protocol": "wireguard"}],
    }


def probe(lab: Any) -> Any:
    started = time.monotonic()
    nat = measure_nat(lab.lab, lab.plan)
    return nat, time.monotonic() - started


def mapped_ports(evidence: list[str]) -> list[str]:
    return [line.split("mapped address ")[1].split()[0] for line in evidence if line.startswith("mapping test")]


def test_default_router_through_vpnlab_run(tmp_path: Path) -> None:
    """MASQUERADE: Linux keeps the source port (endpoint-independent mapping) and conntrack admits
    replies from the exact peer only (address-and-port-dependent filtering); `vpnlab run` shows it."""
    path = tmp_path / "topology.yml"
    path.write_text(json.dumps(topology("it-natprobe-nat", {})))
    out = tmp_path / "result.json"
    run = subprocess.run([sys.executable, "-m", "lab", "run", "--runtime", "docker", "--json", str(out), str(path)],
                         capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    nat = json.loads(out.read_text())["nat"]
    assert (nat["mapping"], nat["filtering"]) == ("endpoint-independent", "address-and-port-dependent"), nat
    router_wan = "203.0.113.1:"
    assert all(port.startswith(router_wan) for port in mapped_ports(nat["evidence"])), nat["evidence"]
    assert "NAT (RFC 5780 probe): EIM/APDF: endpoint-independent mapping" in run.stdout, run.stdout


def test_routed_router_has_no_nat(vpnlab_factory) -> None:
    lab = vpnlab_factory(topology("it-natprobe-routed", {"nat": "none"}), runtime="docker")
    nat, _ = probe(lab)
    assert nat.mapping == "none", nat
    # Stateful forwarding without translation still drops what the client did not ask for.
    assert nat.filtering == "address-and-port-dependent", nat
    assert all(port.startswith("192.168.100.10:") for port in mapped_ports(nat.evidence)), nat.evidence


def test_blocked_stun_is_unknown_with_the_reason(vpnlab_factory) -> None:
    lab = vpnlab_factory(topology("it-natprobe-blocked", {"block": ["udp/3478-3479"]}), runtime="docker")
    nat, _ = probe(lab)
    assert (nat.mapping, nat.filtering) == ("unknown", "unknown"), nat
    assert nat.summary.startswith("STUN blocked by the router (UDP 3478)"), nat.summary
    assert "block udp/3478-3479" in nat.summary


def test_port_randomising_router_is_symmetric(vpnlab_factory) -> None:
    try:
        Router(nat="masquerade-random-fully")
    except ValidationError:
        pytest.skip("this vpnlab has no port-randomising NAT (router.nat: masquerade-random-fully)")
    lab = vpnlab_factory(topology("it-natprobe-random", {"nat": "masquerade-random-fully"}), runtime="docker")
    nat, _ = probe(lab)
    assert (nat.mapping, nat.filtering) == ("address-and-port-dependent", "address-and-port-dependent"), nat
    assert len(set(mapped_ports(nat.evidence))) == 3, nat.evidence


def test_strict_router_blocks_stun(vpnlab_factory) -> None:
    """A guest network that lets out only TCP 443 and UDP 53: the probe cannot reach UDP 3478."""
    if "allow_out" not in Router.model_fields:
        pytest.skip("this vpnlab's router has no allow_out (the strict profile)")
    lab = vpnlab_factory(topology("it-natprobe-strict", {"allow_out": ["tcp/443", "udp/53"]}), runtime="docker")
    nat, _ = probe(lab)
    assert (nat.mapping, nat.filtering) == ("unknown", "unknown"), nat
    assert nat.summary.startswith("STUN blocked by the router (UDP 3478)"), nat.summary
