"""Double NAT (upstream:): the model, the address plan, the nodes and the upstream evidence, no Docker."""

from __future__ import annotations

import pytest

from lab.check.upstream import UpstreamEvidence, helpers_missing, own_entries, upstream_source
from lab.check.evidence import RuleHit
from lab.errors import TopologyError
from lab.plan import plan_lab
from lab.protocols.base import TunnelContext
from lab.runtime.wiring import plan_ports, wiring_script
from lab.topology import parse_topology

from .conftest import FixedSecrets

BASE = """name: dn
servers: [{name: vpn, protocols: [wireguard, ikev2]}]
clients: [{name: alice}]
tunnels: [{client: alice, server: vpn, protocol: wireguard}, {client: alice, server: vpn, protocol: ikev2}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        parse_topology(text)
    return [f"{p.location}: {p.message}" for p in caught.value.problems]


def rules(plan, node: str) -> str:
    return next(f.content for f in plan.node(node).files if f.path.endswith("rules.v4"))


def test_upstream_puts_the_router_on_the_middle_segment() -> None:
    topology = parse_topology(BASE + "upstream: {}\n")
    plan = plan_lab(topology, secrets=FixedSecrets("dn"))
    a = plan.addresses
    assert (str(a.middle), str(a.upstream_lan), str(a.router_wan), str(a.upstream_wan)) == (
        "198.51.100.0/24", "198.51.100.1", "198.51.100.2", "203.0.113.1")
    assert [n.name for n in plan.nodes] == ["router", "isp", "vpn", "alice"] == topology.node_names
    router, isp = plan.node("router"), plan.node("isp")
    assert [(l.segment, l.ifname, l.address) for l in router.links] == [
        ("lan", "lan0", "192.168.100.1/24"), ("middle", "wan0", "198.51.100.2/24")]
    assert router.routes == ["default via 198.51.100.1 dev wan0"]
    assert isp.role == "router"  # the router image: no image of its own
    assert [(l.segment, l.ifname, l.address) for l in isp.links] == [
        ("middle", "lan0", "198.51.100.1/24"), ("wan", "wan0", "203.0.113.1/24")]
    assert "-A POSTROUTING -s 198.51.100.0/24 -o wan0" in rules(plan, "isp")
    assert "-A POSTROUTING -s 192.168.100.0/24 -o wan0" in rules(plan, "router")
    assert plan.node("vpn").routes == []  # both masquerade: the servers see the upstream's address only
    pids = {n.name: 100 + i for i, n in enumerate(plan.nodes)}
    assert wiring_script(plan_ports(list(plan.nodes), pids)).count("master br-middle") == 2


def test_the_same_router_rules_for_the_upstream_section() -> None:
    topology = parse_topology(BASE + "upstream: {profile: ipsec-off, helpers: [pptp], block: [udp/51820]}\n")
    plan = plan_lab(topology, secrets=FixedSecrets("dn"))
    text = rules(plan, "isp")
    assert '--comment "vpnlab: passthrough ipsec off (udp/4500)" -j DROP' in text
    assert '--comment "vpnlab: block udp/51820" -j DROP' in text
    assert "-A PREROUTING -i lan0 -p tcp --dport 1723" in text and "-j CT --helper pptp" in text
    assert "passthrough ipsec off" not in rules(plan, "router")  # one router's switches stay its own
    assert plan.upstream is not None and plan.upstream.name == "isp"


def test_routed_routers_get_the_routes_back() -> None:
    routed_home = parse_topology(BASE + "router: {nat: none}\nupstream: {}\n")
    plan = plan_lab(routed_home, secrets=FixedSecrets("dn"))
    assert "-A POSTROUTING -s 192.168.100.0/24 -o wan0" in rules(plan, "isp")  # the upstream NATs the LAN too
    assert plan.node("isp").routes == ["192.168.100.0/24 via 198.51.100.2 dev lan0"]
    both_routed = parse_topology(BASE + "router: {nat: none}\nupstream: {nat: none}\n")
    plan = plan_lab(both_routed, secrets=FixedSecrets("dn"))
    assert plan.node("vpn").routes == ["198.51.100.0/24 via 203.0.113.1 dev eth0", "192.168.100.0/24 via 203.0.113.1 dev eth0"]
    assert "MASQUERADE" not in rules(plan, "isp")


def test_without_upstream_nothing_changes() -> None:
    topology = parse_topology(BASE)
    plan = plan_lab(topology, secrets=FixedSecrets("dn"))
    assert topology.upstream is None and plan.upstream is None and plan.addresses.middle is None
    assert [n.name for n in plan.nodes] == ["router", "vpn", "alice"]
    assert plan.node("router").routes == [] and str(plan.addresses.router_wan) == "203.0.113.1"


def test_segments_and_names_are_checked() -> None:
    assert problems(BASE + "upstream: {}\nnetwork: {middle: 203.0.113.0/25}\n") == [
        "network.middle: 203.0.113.0/25 overlaps network.wan 203.0.113.0/24: the segments must be apart "
        "(set network.middle to a part of 203.0.113.0/24 or 198.51.100.0/24 that the WAN does not use)"]
    assert problems(BASE + "network: {middle: 198.51.100.0/24}\n") == [
        "network.middle: a middle segment goes only with an upstream: router (double NAT); add upstream: or remove network.middle"]
    assert problems(BASE + "network: {middle: 198.51.100.0/27}\nupstream: {}\n")[0].startswith(
        "network.middle: 198.51.100.0/27: the middle segment")  # a /26 at most, as the WAN
    assert problems(BASE + "upstream: {profile: no-such-profile}\n")[0].startswith("upstream.profile: ")
    named_isp = BASE.replace("name: alice", "name: isp").replace("client: alice", "client: isp")
    parse_topology(named_isp)  # 'isp' is free without an upstream
    assert problems(named_isp + "upstream: {}\n") == [
        "clients[0].name: 'isp' is reserved for the upstream router's node (upstream:); choose another name"]
    assert parse_topology(BASE + "upstream: {}\nnetwork: {wan: 198.51.100.0/24, middle: 203.0.113.0/24}\n").network.middle


def test_upstream_steps_change_only_what_a_router_step_may() -> None:
    steps = "steps:\n  - upstream: {passthrough: {ipsec: false}}\n  - exec: {node: isp, run: 'conntrack -L'}\n"
    topology = parse_topology(BASE + "upstream: {}\n" + steps)
    assert [s.kind for s in topology.steps] == ["upstream", "exec"]
    assert problems(BASE + "upstream: {}\nsteps:\n  - upstream: {conntrack: {udp_timeout: 5}}\n")[0].startswith(
        "steps[0].upstream.conntrack: conntrack timeouts are the router's sysctls")


def entry(src: str, sport: int, dport: int, reply_dst: str, reply_dport: int) -> str:
    return (f"udp      17 29 src={src} dst=203.0.113.10 sport={sport} dport={dport} "
            f"src=203.0.113.10 dst={reply_dst} sport={dport} dport={reply_dport} mark=0 use=1")


def test_the_upstream_entries_of_one_tunnel_are_told_by_the_port_the_router_mapped() -> None:
    router_entries = [entry("192.168.100.10", 40000, 1194, "198.51.100.2", 40001)]
    upstream_entries = [entry("198.51.100.2", 40001, 1194, "203.0.113.1", 40001),  # this client's, mapped once
                        entry("198.51.100.2", 40002, 1194, "203.0.113.1", 40002),  # another client's
                        "esp      50 29 src=198.51.100.2 dst=203.0.113.10 src=203.0.113.10 dst=203.0.113.1 mark=0 use=1"]
    assert own_entries(upstream_entries, router_entries) == [upstream_entries[0], upstream_entries[2]]


def test_the_reason_names_the_upstream_router_and_its_rule() -> None:
    topology = parse_topology(BASE + "upstream: {}\n")
    plan = plan_lab(topology)
    ctx: TunnelContext = plan.tunnels[1]
    assert upstream_source(ctx) == "198.51.100.2"
    seen = UpstreamEvidence("198.51.100.2", [], [RuleHit("FORWARD", "vpnlab: passthrough ipsec off (udp/4500)", 4)])
    assert seen.facts("down", ctx) == [
        "upstream router 'isp' rule 'vpnlab: passthrough ipsec off (udp/4500)' (FORWARD) dropped 4 packets during this check"]
    assert seen.to_evidence()["upstream_drops"] == [
        "FORWARD: 'vpnlab: passthrough ipsec off (udp/4500)' dropped 4 packets during this check"]
    assert UpstreamEvidence("198.51.100.2").facts("down", ctx) == [
        "no upstream router 'isp' conntrack entry for udp/500, udp/4500, esp from 198.51.100.2 to 203.0.113.10"]
    routed = plan_lab(parse_topology(BASE + "router: {nat: none}\nupstream: {}\n")).tunnels[0]
    assert upstream_source(routed) == "192.168.100.10"


def test_a_helper_the_upstream_router_lacks_is_said() -> None:
    call = "tcp      6 431990 ESTABLISHED src={} dst=203.0.113.10 sport=40000 dport=1723 src=203.0.113.10 dst={} " \
           "sport=1723 dport=40000 [ASSURED] mark=0 {}use=1"
    router = [call.format("192.168.100.10", "198.51.100.2", "helper=pptp ")]
    assert helpers_missing(router, [call.format("198.51.100.2", "203.0.113.1", "")]) == ("pptp",)
    assert helpers_missing(router, [call.format("198.51.100.2", "203.0.113.1", "helper=pptp ")]) == ()
    ctx = plan_lab(parse_topology(BASE + "upstream: {}\n")).tunnels[0]
    assert UpstreamEvidence("198.51.100.2", helpers_missing=("pptp",)).facts("down", ctx)[-1] == (
        "the router's pptp helper tracks the flow, the upstream router 'isp' has no pptp helper on it "
        "(behind two NATs each needs it)")
