"""Topology validation: valid files load; invalid ones report every problem, as in their .err golden file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import TopologyError
from lab.topology import load_topology, parse_topology, plan_addresses

from .conftest import HERE, compare_golden

VALID = sorted((HERE / "topologies" / "valid").glob("*.yml"))
INVALID = sorted((HERE / "topologies" / "invalid").glob("*.yml"))
REPO_TOPOLOGIES = sorted((HERE.parent.parent / "topologies").glob("*.yml"))


@pytest.mark.parametrize("path", VALID + REPO_TOPOLOGIES, ids=lambda p: p.stem)
def test_valid_topology_loads(path: Path) -> None:
    topology = load_topology(path)
    assert topology.name
    plan_addresses(topology)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_topology_reports_every_problem(path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    relative = str(caught.value).replace(str(path), path.name)
    compare_golden(path.with_suffix(".err"), relative + "\n")


def test_minimal_topology_gets_router_defaults() -> None:
    topology = parse_topology("name: tiny\nservers: [{name: vpn, protocols: [wireguard]}]\nclients: [{name: a}]\n")
    assert topology.router.nat == "masquerade"
    assert topology.router.helpers == []
    assert topology.router.passthrough == {"pptp": True, "l2tp": True, "ipsec": True}
    assert topology.tunnels == []


def test_home_office_example_is_accepted_exactly() -> None:
    topology = load_topology(HERE.parent.parent / "topologies" / "home-office.yml")
    assert [t.expect for t in topology.tunnels] == ["up", "down", "up"]
    assert topology.router.block[0].label == "udp/1194"
    assert topology.router.conntrack.udp_timeout == 30


def test_problem_locations_name_the_field() -> None:
    text = (
        "name: x\nservers: [{name: vpn, protocols: [wireguard]}]\nclients: [{name: a}]\n"
        "tunnels: [{client: a, server: vpn, protocol: wiregaurd}]\n"
    )
    with pytest.raises(TopologyError) as caught:
        parse_topology(text)
    [problem] = caught.value.problems
    assert problem.location == "tunnels[0].protocol"
    assert "unknown protocol 'wiregaurd'" in problem.message and "wireguard" in problem.message


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology("name: x\nservers: [\n")
    assert caught.value.problems[0].location.startswith("line ")


@pytest.mark.parametrize(
    "lan,wan,field",
    [("8.8.8.0/24", "203.0.113.0/24", "network.lan"), ("192.168.1.0/24", "192.0.2.0/24", "network.wan")],
    ids=["public-lan", "non-documentation-wan"],
)
def test_address_ranges_are_enforced(lan: str, wan: str, field: str) -> None:
    text = f"name: x\nnetwork: {{lan: {lan}, wan: {wan}}}\nservers: [{{name: v, protocols: [wireguard]}}]\nclients: [{{name: a}}]\n"
    with pytest.raises(TopologyError) as caught:
        parse_topology(text)
    assert [p.location for p in caught.value.problems] == [field]


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    import pytest

    from lab.errors import TopologyError

    with pytest.raises(TopologyError, match="is not a valid name"):
        parse_topology('name: "x\\n"\nservers: [{name: vpn, protocols: [wireguard]}]\nclients: [{name: a}]\n')
