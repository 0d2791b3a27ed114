"""The router as a VPN client (issue 11, scenario 2) without Docker: which tunnels the router may
dial, router.helpers_for and the raw-table rules it renders, the router node that dials, the
router step that flips it, and the diagnosis of the router's own PPTP call."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.check.evidence import Evidence, RouterEvidence
from lab.check.run import check_tunnel
from lab.errors import TopologyError
from lab.plan import plan_lab
from lab.protocols import PROTOCOLS
from lab.protocols.base import Environment
from lab.router.rules import plan_router, render_ruleset
from lab.runtime.lab import ExecResult
from lab.steps.router_change import RULES_COMMAND, merged_router, router_changes
from lab.topology import load_topology, parse_topology
from lab.topology.model import Topology

from .conftest import FixedSecrets

SCENARIO = Path(__file__).resolve().parent.parent.parent / "topologies" / "scenario-router-client.yml"
OUTPUT_HELPER = ('-A OUTPUT -o wan0 -p tcp --dport 1723 -m comment --comment "vpnlab: helper pptp for the router itself" '
                 "-j CT --helper pptp")
PREROUTING_HELPER = '-A PREROUTING -i lan0 -p tcp --dport 1723 -m comment --comment "vpnlab: helper pptp" -j CT --helper pptp'


def topology(router: str = "{helpers: [pptp]}", tunnels: str = "  - {client: router, server: vpn, protocol: pptp}\n") -> Topology:
    return parse_topology(
        f"name: t\nrouter: {router}\nservers:\n  - {{name: vpn, protocols: [pptp, wireguard]}}\n"
        f"clients:\n  - {{name: alice}}\ntunnels:\n{tunnels}", "t.yml")


def problems(router: str = "{helpers: [pptp]}", tunnels: str = "  - {client: router, server: vpn, protocol: pptp}\n") -> list[str]:
    with pytest.raises(TopologyError) as caught:
        topology(router, tunnels)
    return [f"{p.location}: {p.message}" for p in caught.value.problems]


def rules(t: Topology) -> list[str]:
    return render_ruleset(plan_lab(t).router).splitlines()


# --- validation --------------------------------------------------------------


def test_the_router_may_dial_pptp() -> None:
    t = topology()
    assert [(x.client, x.protocol) for x in t.tunnels] == [("router", "pptp")]
    assert t.router.helpers_for == ["forwarded", "local"]  # the default: a correct router


def test_the_router_dialling_another_protocol_is_refused_naming_what_it_can_dial() -> None:
    assert problems(tunnels="  - {client: router, server: vpn, protocol: wireguard}\n") == [
        "tunnels[0].protocol: the router itself dials only pptp, not 'wireguard' (give this tunnel a client from clients:)"
    ]


def test_an_unknown_client_is_still_refused_as_before() -> None:
    assert problems(tunnels="  - {client: bob, server: vpn, protocol: pptp}\n") == [
        "tunnels[0].client: no client named 'bob' (clients: alice)"
    ]


@pytest.mark.parametrize("value,message", [
    ("[prerouting]", "router.helpers_for[0]: Input should be 'forwarded' or 'local'"),
    ("[]", "router.helpers_for: name forwarded, local or both (to attach no helper at all, leave helpers empty)"),
    ("[local, local]", "router.helpers_for: 'local' is listed twice"),
    ("local", "router.helpers_for: Input should be a valid list"),
])
def test_helpers_for_is_checked_strictly(value: str, message: str) -> None:
    assert problems(router=f"{{helpers: [pptp], helpers_for: {value}}}") == [message]


# --- the raw table ------------------------------------------------------------


def test_forwarded_only_is_openwrts_bug_no_helper_for_the_routers_own_call() -> None:
    lines = rules(topology("{helpers: [pptp], helpers_for: [forwarded]}"))
    assert PREROUTING_HELPER in lines and OUTPUT_HELPER not in lines


def test_local_attaches_the_helper_in_raw_output_for_a_router_that_dials() -> None:
    lines = rules(topology())
    assert PREROUTING_HELPER in lines and OUTPUT_HELPER in lines
    assert lines.index(OUTPUT_HELPER) < lines.index("*nat")  # in the raw table
    only_local = rules(topology("{helpers: [pptp], helpers_for: [local]}"))
    assert OUTPUT_HELPER in only_local and PREROUTING_HELPER not in only_local


def test_a_router_that_dials_nothing_gets_no_output_helper_rule() -> None:
    lan_only = topology(tunnels="  - {client: alice, server: vpn, protocol: pptp}\n")
    assert lan_only.router.helpers_for == ["forwarded", "local"]
    assert OUTPUT_HELPER not in rules(lan_only)  # nothing would cross it: existing rulesets stay as they were


def test_the_routers_input_accepts_only_return_traffic_from_the_wan() -> None:
    lines = [line for line in rules(topology()) if line.startswith("-A INPUT")]
    from_wan = [line for line in lines if "-i wan0" in line]
    assert [line.split("-j ")[-1] for line in from_wan] == ["ACCEPT", "DROP", "DROP"]  # icmp; gre not tied; the rest
    assert "ESTABLISHED,RELATED" in lines[1]


# --- the router node and the tunnel context -------------------------------------


def test_a_dialling_router_runs_the_protocols_client_files_and_up_check() -> None:
    t = load_topology(SCENARIO)
    plan = plan_lab(t, Environment(ppp=True), FixedSecrets(t.name))
    router = plan.node("router")
    paths = {f.path for f in router.files}
    assert {"/etc/vpnlab/pptp/vpn.options", "/etc/vpnlab/pptp/vpn2.options", "/etc/ppp/chap-secrets",
            "/etc/vpnlab/tunnels/router-pptp-vpn/check.sh", "/etc/vpnlab/tunnels/router-pptp-vpn2/check.sh"} <= paths
    assert "/dev/ppp" in router.devices and router.cap_add == ["NET_ADMIN"]
    assert any("syslogd" in line for line in router.setup)  # pptp-linux logs to syslog only
    secrets = next(f.content for f in router.files if f.path == "/etc/ppp/chap-secrets")
    assert '"router"\t"vpn-pptp"' in secrets and '"router"\t"vpn2-pptp"' in secrets and "alice" not in secrets
    server = next(f.content for f in plan.node("vpn").files if f.path == "/etc/ppp/chap-secrets")
    assert '"alice"\t"vpn-pptp"' in server and '"router"\t"vpn-pptp"' in server


def test_a_router_that_dials_nothing_keeps_its_node_as_before() -> None:
    t = topology(tunnels="  - {client: alice, server: vpn, protocol: pptp}\n")
    router = plan_lab(t, Environment(ppp=True), FixedSecrets("t")).node("router")
    assert router.devices == [] and [f.path for f in router.files] == ["/etc/vpnlab/rules.v4"]


def test_the_routers_tunnel_is_seen_from_the_routers_wan_address() -> None:
    plan = plan_lab(load_topology(SCENARIO))
    router_ctx, alice_ctx = plan.tunnels[1], plan.tunnels[0]
    assert str(router_ctx.client_lan) == "203.0.113.1" and str(alice_ctx.client_lan) == "192.168.100.10"


# --- the router step ------------------------------------------------------------


def test_a_router_step_attaches_the_helper_to_local_traffic() -> None:
    t = load_topology(SCENARIO)
    after = merged_router(t.router, {"helpers_for": ["forwarded", "local"]})
    assert router_changes(t.router, after) == ["helpers for local traffic on"]
    assert router_changes(after, t.router) == ["helpers for local traffic off"]
    fixed = render_ruleset(plan_router(t.model_copy(update={"router": after}), plan_lab(t).addresses)).splitlines()
    assert OUTPUT_HELPER in fixed and OUTPUT_HELPER not in rules(t)
    assert "iptables -t raw -v -S OUTPUT" in RULES_COMMAND  # the step's evidence shows the chain it changed


# --- diagnosis -------------------------------------------------------------------

CONTROL = ("tcp 6 431999 ESTABLISHED src=203.0.113.1 dst=203.0.113.10 sport=40000 dport=1723 "
           "src=203.0.113.10 dst=203.0.113.1 sport=1723 dport=40000 [ASSURED] mark=0 use=1")
GRE = ("gre 47 29 src=203.0.113.1 dst=203.0.113.10 srckey=0x0 dstkey=0x8000 [UNREPLIED] "
       "src=203.0.113.10 dst=203.0.113.1 srckey=0x8000 dstkey=0x0 mark=0 use=1")
COUNTERS = ("chain INPUT\n 12 900 DROP 47 -- wan0 * 0.0.0.0/0 0.0.0.0/0 "
            "/* vpnlab: input gre from wan not tied to a call */\n")


def test_the_routers_own_call_is_diagnosed_as_gre_dropped_at_input() -> None:
    router = RouterEvidence.parse(f"{CONTROL}\n{GRE}\n", COUNTERS)
    facts = PROTOCOLS["pptp"].diagnose(Evidence(router=router, router_dials=True))
    assert ("GRE from the server not tied to the router's own call (no pptp helper on the router's own TCP 1723 "
            "connection): the router's GRE entry in its conntrack stays [UNREPLIED]; rule "
            "'vpnlab: input gre from wan not tied to a call' (INPUT) dropped 12 packets") in facts
    # the same evidence from a LAN client through a router without NAT reads as a forwarding problem
    lan = PROTOCOLS["pptp"].diagnose(Evidence(router=router))
    assert not any("router's own call" in fact for fact in lan)


class DialledLab:
    """Answers like a lab whose router dialled a server that never got its GRE back."""

    def exec(self, node: str, command: str, *, timeout: float | None = None) -> ExecResult:
        if command.endswith("check.sh"):
            return ExecResult(node, command, 1, "vpnlab-result down 15400 pppd exited after 15.4 s\n")
        if node == "router" and "conntrack -L" in command:
            counters = ("chain INPUT\n     3   180 ACCEPT  0 -- * * 0.0.0.0/0 0.0.0.0/0 "
                        "/* vpnlab: input return traffic */\n" + COUNTERS.split("\n", 1)[1])
            return ExecResult(node, command, 0, f"==== conntrack\n{CONTROL}\n{GRE}\n==== counters\n{counters}")
        return ExecResult(node, command, 0, "")


def test_the_routers_own_check_keeps_its_input_drops_as_evidence() -> None:
    t = load_topology(SCENARIO)
    plan = plan_lab(t, Environment(ppp=True), FixedSecrets(t.name))
    result = check_tunnel(DialledLab(), plan.tunnels[1], "router")  # type: ignore[arg-type]
    assert (result.client, result.observed) == ("router", "down")
    assert result.evidence["router_input_drops"] == [
        "INPUT: 'vpnlab: input gre from wan not tied to a call' dropped 12 packets since the rules were loaded"]  # the fake router has no readings
    assert GRE in result.evidence["router_conntrack"]
    assert "GRE from the server not tied to the router's own call" in result.reason
    alice = check_tunnel(DialledLab(), plan.tunnels[0], "router")  # type: ignore[arg-type]
    assert "router_input_drops" not in alice.evidence  # a LAN client's evidence is as it was
