"""The NAT probe without Docker: the nat_probe key, the stun node, and the parser on real
turnutils_natdiscovery outputs captured through real router configurations (tests/unit/data/natdiscovery)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from lab.check.results import RunResult
from lab.errors import TopologyError
from lab.matrix.result import NatBehaviour
from lab.natprobe import blocked_summary, drops_during, parse_natdiscovery, probe_command
from lab.plan import plan_lab
from lab.report import print_result
from lab.topology import load_topology, parse_topology

from .conftest import HERE, FixedSecrets

DATA = HERE / "data" / "natdiscovery"
VALID = HERE / "topologies" / "valid"

# Which router configuration each capture came from (see docs/nat-probe.md).
#   masquerade: the default router; routed: nat: none; blocked: block udp/3478-3479;
#   random-fully: MASQUERADE --random-fully; port-per-address: one SNAT port per destination address;
#   port-forward: a DNAT of the client's port from anyone; port-forward-from-one-address: from 203.0.113.11 only.


def parsed(mapping: str, filtering: str) -> NatBehaviour:
    return parse_natdiscovery((DATA / f"{mapping}-mapping.txt").read_text(),
                              (DATA / f"{filtering}-filtering.txt").read_text(), "203.0.113.11")


@pytest.mark.parametrize("capture,expected", [
    ("masquerade", "endpoint-independent"),
    ("port-per-address", "address-dependent"),
    ("random-fully", "address-and-port-dependent"),
    ("routed", "none"),
])
def test_mapping(capture: str, expected: str) -> None:
    assert parsed(capture, "masquerade").mapping == expected


@pytest.mark.parametrize("capture,expected", [
    ("port-forward", "endpoint-independent"),
    ("port-forward-from-one-address", "address-dependent"),
    ("masquerade", "address-and-port-dependent"),
    ("random-fully", "address-and-port-dependent"),
    ("routed", "address-and-port-dependent"),
])
def test_filtering(capture: str, expected: str) -> None:
    assert parsed("masquerade", capture).filtering == expected


def test_default_router_summary_and_evidence() -> None:
    nat = parsed("masquerade", "masquerade")
    assert nat.short == "EIM/APDF"
    assert nat.summary == "endpoint-independent mapping, address-and-port-dependent filtering"
    assert nat.evidence[0] == ("mapping test I (to the primary address): reply from 203.0.113.11:3478, "
                               "mapped address 203.0.113.1:40000 (local 192.168.100.10:40000)")
    assert "filtering test II (reply asked from the alternate address and port): no reply within 3 s" in nat.evidence
    assert "filtering: NAT with Address and Port Dependent Filtering!" in nat.evidence
    assert len(nat.evidence) < 10  # small enough for a JSON result and a report


def test_address_dependent_filtering_evidence_shows_the_port_only_reply() -> None:
    nat = parsed("masquerade", "port-forward-from-one-address")
    assert any(line.startswith("filtering test III") and "reply from 203.0.113.11:3479" in line for line in nat.evidence)


def test_routed_router_has_no_nat() -> None:
    nat = parsed("routed", "routed")
    assert (nat.mapping, nat.filtering, nat.short) == ("none", "address-and-port-dependent", "no NAT, APDF")
    assert nat.summary.startswith("no NAT (the client's own address is seen)")


def test_no_reply_is_unknown() -> None:
    nat = parsed("blocked", "blocked")
    assert (nat.mapping, nat.filtering) == ("unknown", "unknown")
    assert nat.summary == "NAT behaviour unknown: no STUN reply from 203.0.113.11:3478"
    assert nat.evidence == ["mapping test I (to the primary address): no reply within 3 s",
                            "filtering test I (to the primary address): no reply within 3 s"]


def test_empty_or_partial_output() -> None:
    assert "printed nothing" in parse_natdiscovery("", "").summary
    half = parse_natdiscovery((DATA / "masquerade-mapping.txt").read_text(), "")
    assert (half.mapping, half.filtering) == ("endpoint-independent", "unknown")
    assert "filtering unknown (the probe printed nothing" in half.summary


def listing(*rules: tuple[int, str, str]) -> str:
    """An ``iptables -L FORWARD -v -n -x`` listing of (packets, target, comment) rules."""
    head = "Chain FORWARD (policy DROP 0 packets, 0 bytes)\n    pkts      bytes target     prot opt in     out     source               destination\n"
    return head + "".join(
        f"{packets:8} {packets * 60:10} {target:<10} 17   --  *      *       0.0.0.0/0            0.0.0.0/0            /* {comment} */\n"
        for packets, target, comment in rules
    )


def test_blocked_names_the_router_rule_that_counted() -> None:
    before = listing((1, "DROP", "vpnlab: block udp/3478-3479"), (4, "DROP", "vpnlab: block udp/51820"),
                     (7, "ACCEPT", "vpnlab: forward lan to wan"))
    after = listing((3, "DROP", "vpnlab: block udp/3478-3479"), (9, "DROP", "vpnlab: block udp/51820"),
                    (9, "ACCEPT", "vpnlab: forward lan to wan"))
    drops = drops_during(before, after)
    assert drops == ["router: FORWARD 'vpnlab: block udp/3478-3479' dropped 2 packets during the probe"]
    nat = blocked_summary(parsed("blocked", "blocked"), drops)
    assert nat.summary == "STUN blocked by the router (UDP 3478): dropped by 'vpnlab: block udp/3478-3479'"
    assert nat.evidence[-1] == drops[0]
    # A strict router's catch-all counts; its drop of another named flow (a tunnel checked meanwhile) does not.
    strict = drops_during(listing((0, "DROP", "vpnlab: strict: not allowed out")),
                          listing((2, "DROP", "vpnlab: strict: not allowed out"),
                                  (5, "DROP", "vpnlab: strict: not allowed out (udp/51820)")))
    assert strict == ["router: FORWARD 'vpnlab: strict: not allowed out' dropped 2 packets during the probe"]
    assert blocked_summary(parsed("blocked", "blocked"), strict).summary.startswith("STUN blocked by the router (UDP 3478)")
    # Without a counted drop the probe only says there was no reply.
    assert blocked_summary(parsed("blocked", "blocked"), []).summary.startswith("NAT behaviour unknown")


def test_probe_command_binds_the_client_address_and_bounds_each_run() -> None:
    command = probe_command("192.168.100.10", "203.0.113.11")
    assert command.count("timeout 10 turnutils_natdiscovery -L 192.168.100.10 -p 3478") == 2
    assert " -m 203.0.113.11" in command and " -f 203.0.113.11" in command and "wait;" in command


# --- the topology key and the stun node ----------------------------------------------------

def test_nat_probe_is_off_by_default() -> None:
    topology = load_topology(VALID / "minimal.yml")
    assert topology.nat_probe is False
    assert "stun" not in topology.node_names
    assert "stun" not in [n.name for n in plan_lab(topology, secrets=FixedSecrets("minimal")).nodes]


def test_stun_node_spec() -> None:
    topology = load_topology(VALID / "nat-probe.yml")
    plan = plan_lab(topology, secrets=FixedSecrets(topology.name))
    assert [n.name for n in plan.nodes] == ["router", "vpn", "stun", "alice"]
    stun = plan.node("stun")
    assert stun.role == "server"
    assert [(link.segment, link.address, link.secondary) for link in stun.links] == [
        ("wan", "203.0.113.11/24", ("203.0.113.12/24",))
    ]
    assert [str(a) for a in plan.stun_addresses] == ["203.0.113.11", "203.0.113.12"]
    setup = stun.setup_script()
    assert "ip address add 203.0.113.12/24 dev eth0" in setup
    start = stun.setup[0]
    for flag in ("--stun-only", "-n ", "--no-cli", "--listening-ip 203.0.113.11", "--listening-ip 203.0.113.12",
                 "--listening-port 3478", "--alt-listening-port 3479", "--log-file /var/log/vpnlab/turnserver.log"):
        assert flag in start, flag
    assert stun.routes == []


def test_stun_node_routes_back_to_the_lan_without_nat() -> None:
    text = (VALID / "nat-probe.yml").read_text() + "router: {nat: none}\n"
    plan = plan_lab(parse_topology(text), secrets=FixedSecrets("nat-probe"))
    assert plan.node("stun").routes == ["192.168.100.0/24 via 203.0.113.1 dev eth0"]


def test_stun_name_reserved_only_with_the_probe() -> None:
    text = "name: t\nservers: [{name: stun, protocols: [wireguard]}]\nclients: [{name: alice}]\n"
    assert parse_topology(text).servers[0].name == "stun"
    with pytest.raises(TopologyError) as caught:
        parse_topology(text + "nat_probe: true\n")
    assert "'stun' is reserved for the NAT probe's node (nat_probe: true)" in str(caught.value)


def test_nat_probe_must_be_a_boolean() -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology("name: t\nnat_probe: maybe\nservers: [{name: vpn, protocols: [wireguard]}]\nclients: [{name: a}]\n")
    assert "nat_probe" in str(caught.value)


# --- vpnlab run's result ------------------------------------------------------------------

def test_run_result_json_and_line() -> None:
    plain = RunResult("t", "docker", "test", "6.1", [])
    assert "nat" not in plain.to_dict()
    nat = parsed("masquerade", "masquerade")
    result = RunResult("t", "docker", "test", "6.1", [], nat=nat)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["nat"]["mapping"] == "endpoint-independent" and data["nat"]["filtering"] == "address-and-port-dependent"
    assert data["nat"]["summary"] == nat.summary and data["nat"]["evidence"] == nat.evidence
    out = io.StringIO()
    print_result(result, Console(file=out, width=120, color_system=None))
    lines = [line for line in out.getvalue().splitlines() if line.startswith("NAT")]
    assert lines == ["NAT (RFC 5780 probe): EIM/APDF: endpoint-independent mapping, address-and-port-dependent filtering"]


def test_run_result_line_when_blocked() -> None:
    nat = NatBehaviour("unknown", "unknown", "STUN blocked by the router (UDP 3478): dropped by 'x'")
    out = io.StringIO()
    print_result(RunResult("t", "docker", "test", "6.1", [], nat=nat), Console(file=out, width=120, color_system=None))
    assert "NAT (RFC 5780 probe): STUN blocked by the router (UDP 3478): dropped by 'x'" in out.getvalue()


def test_captures_exist() -> None:
    assert len(list(Path(DATA).glob("*.txt"))) == 11
