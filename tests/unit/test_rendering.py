"""Every file a lab copies into its nodes, rendered with fixed credentials, against golden files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.plan import plan_lab
from lab.runtime.wiring import plan_ports, wiring_script
from lab.topology import load_topology

from .conftest import HERE, FixedSecrets, compare_golden

TOPOLOGIES = sorted((HERE / "topologies" / "valid").glob("*.yml")) + sorted(
    (HERE.parent.parent / "topologies").glob("*.yml")
)
GOLDEN = HERE / "golden"


def node_cases() -> list[tuple[Path, str]]:
    cases = []
    for path in TOPOLOGIES:
        topology = load_topology(path)
        cases += [(path, name) for name in topology.node_names]
    return cases


def render_node(path: Path, node_name: str) -> str:
    topology = load_topology(path)
    node = plan_lab(topology, secrets=FixedSecrets(topology.name)).node(node_name)
    parts = [
        f"# node {node.name} ({node.role})",
        f"# caps +{','.join(node.cap_add)} devices {','.join(node.devices) or '-'}",
        f"# sysctls {node.sysctls}",
        f"# links {[(link.segment, link.ifname, link.address) for link in node.links]}",
        f"# routes {node.routes}",
        "",
        "### setup.sh",
        node.setup_script(),
    ]
    for f in sorted(node.files, key=lambda f: f.path):
        parts += [f"### {f.path} (mode {f.mode:o})", f.content]
    return "\n".join(parts)


@pytest.mark.parametrize("path,node", node_cases(), ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_node_files_match_golden(path: Path, node: str) -> None:
    compare_golden(GOLDEN / path.stem / f"{node}.txt", render_node(path, node))


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_wiring_matches_golden(path: Path) -> None:
    topology = load_topology(path)
    spec = plan_lab(topology, secrets=FixedSecrets(topology.name))
    pids = {node.name: 1000 + i for i, node in enumerate(spec.nodes)}
    compare_golden(GOLDEN / path.stem / "wiring.sh", wiring_script(plan_ports(spec.nodes, pids)))


def test_router_rules_follow_the_switches() -> None:
    topology = load_topology(HERE / "topologies" / "valid" / "locked-down.yml")
    rules = next(f for f in plan_lab(topology, secrets=FixedSecrets("x")).node("router").files if f.path.endswith("rules.v4"))
    text = rules.content
    assert "-j CT --helper" not in text
    for expected in ("-p gre -m comment", "-p udp --dport 1701", "-p udp --dport 500", "-p udp --dport 4500",
                     "-p esp", "-p tcp --dport 1723", "-p udp --dport 51820:51830", "-p tcp --dport 443"):
        assert expected in text, expected
    assert "MASQUERADE" in text


def test_helper_rule_attaches_pptp() -> None:
    topology = load_topology(HERE.parent.parent / "topologies" / "home-office.yml")
    router = plan_lab(topology, secrets=FixedSecrets("x")).node("router")
    rules = next(f for f in router.files if f.path.endswith("rules.v4")).content
    assert "-A PREROUTING -i lan0 -p tcp --dport 1723" in rules and "-j CT --helper pptp" in rules
    assert router.sysctls["net.netfilter.nf_conntrack_udp_timeout"] == "30"
    assert router.sysctls["net.netfilter.nf_conntrack_udp_timeout_stream"] == "120"


def test_keys_are_made_per_lab() -> None:
    from lab.credentials import LabSecrets

    first, second = LabSecrets("a"), LabSecrets("a")
    assert first.wireguard("alice") != second.wireguard("alice")
    assert first.wireguard("alice") == first.wireguard("alice")
    assert first.openvpn_tls_crypt("vpn") != second.openvpn_tls_crypt("vpn")
