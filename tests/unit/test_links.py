"""Link conditions (lab.topology.links), the ICMP block rule and a sized probe: validated before
any shell line, rendered from numbers, and a kernel without netem named. No Docker."""

from __future__ import annotations

import pytest

from lab.capabilities import LINK_CONDITIONS, Capabilities
from lab.errors import TopologyError
from lab.kernel import parse_probe
from lab.plan import plan_lab
from lab.runtime.wiring import plan_ports, wiring_script
from lab.steps.probe import client_probe, server_probe
from lab.topology import load_topology, parse_topology
from lab.topology.model import Topology

from .conftest import HERE, FixedSecrets
from .test_kernel import FULL, HOST

BASE = "name: x\nservers: [{name: vpn, protocols: [wireguard]}]\ntunnels: [{client: a, server: vpn, protocol: wireguard}]\n"
LINKS = HERE / "topologies" / "valid" / "link-conditions.yml"


def with_client_link(link: str) -> Topology:
    return parse_topology(BASE + f"clients: [{{name: a, link: {link}}}]\n")


@pytest.mark.parametrize("link,args", [
    ("{delay: 50ms, loss: 1%}", "delay 50ms loss 1%"),
    ("{delay: 1.5s}", "delay 1500ms"),
    ("{delay: 250us, loss: 0.50%}", "delay 250us loss 0.5%"),
    ("{loss: 100%}", "loss 100%"),
    ("{mtu: 1400}", ""),
])
def test_conditions_render_from_numbers(link: str, args: str) -> None:
    assert with_client_link(link).clients[0].link.netem_args() == args


@pytest.mark.parametrize("link,location,words", [
    ("{mtu: 100}", "clients[0].link.mtu", "greater than or equal to 576"),
    ("{mtu: 9001}", "clients[0].link.mtu", "less than or equal to 9000"),
    ("{mtu: '1400'}", "clients[0].link.mtu", "valid integer"),
    ("{mtu: true}", "clients[0].link.mtu", "valid integer"),
    ("{delay: 50}", "clients[0].link.delay", "a number with a unit"),
    ("{delay: '50'}", "clients[0].link.delay", "a number with a unit"),
    ("{delay: 50 minutes}", "clients[0].link.delay", "a number with a unit"),
    ("{delay: 11s}", "clients[0].link.delay", "out of range"),
    ("{delay: 0ms}", "clients[0].link.delay", "out of range"),
    ("{delay: 0.5us}", "clients[0].link.delay", "whole microseconds"),
    ("{delay: '50ms; reboot'}", "clients[0].link.delay", "a number with a unit"),
    ("{loss: 1}", "clients[0].link.loss", "a percentage"),
    ("{loss: 0%}", "clients[0].link.loss", "out of range"),
    ("{loss: 101%}", "clients[0].link.loss", "out of range"),
    ("{loss: '1%\\nx'}", "clients[0].link.loss", "a percentage"),
    ("{jitter: 5ms}", "clients[0].link.jitter", "unknown field"),
])
def test_every_bad_value_is_refused_where_it_is(link: str, location: str, words: str) -> None:
    with pytest.raises(TopologyError) as caught:
        with_client_link(link)
    [problem] = caught.value.problems
    assert problem.location == location and words in problem.message, (problem.location, problem.message)


def test_router_links_are_lan_and_wan_only() -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology(BASE + "clients: [{name: a}]\nrouter: {links: {dmz: {mtu: 1400}}}\n")
    assert [p.location for p in caught.value.problems] == ["router.links.dmz"]


def test_conditions_survive_the_stored_topology() -> None:
    topology = load_topology(LINKS)
    assert Topology.model_validate_json(topology.model_dump_json()) == topology


def test_mtu_goes_on_both_veth_ends_and_netem_on_the_nodes_side() -> None:
    spec = plan_lab(load_topology(LINKS), secrets=FixedSecrets("link-conditions"))
    script = wiring_script(plan_ports(spec.nodes, {n.name: 1000 + i for i, n in enumerate(spec.nodes)}))
    assert "ip link add p0 mtu 1492 type veth peer name lan0 mtu 1492 netns 1000" in script
    assert "ip link add p1 type veth peer name wan0 netns 1000" in script  # delay only: no mtu
    assert "netem" not in script  # the switch cannot enter a node's namespace
    assert "tc qdisc add dev eth0 root netem delay 50ms loss 1% ||" in spec.node("alice").setup_script()
    assert "tc qdisc add dev wan0 root netem delay 1500ms ||" in spec.node("router").setup_script()
    assert "tc " not in spec.node("bob").setup_script()


def test_a_kernel_without_netem_skips_every_tunnel_and_names_it() -> None:
    topology = load_topology(LINKS)
    host, full = Capabilities(parse_probe(HOST)), Capabilities(parse_probe(FULL))
    why = "kernel 6.18.44-fc-v669 lacks netem (sch_netem) for the link conditions (delay, loss)"
    assert host.skips(topology) == {0: why, 1: why}
    assert host.needs(topology) == {"wireguard": [], LINK_CONDITIONS: ["netem (sch_netem)"]}  # auto: the UML guest
    assert full.skips(topology) == {} and full.needs(topology)[LINK_CONDITIONS] == []
    mtu_only = with_client_link("{mtu: 1400}")
    assert host.skips(mtu_only) == {} and LINK_CONDITIONS not in host.needs(mtu_only)


def test_icmp_frag_needed_block_drops_forwarded_and_own() -> None:
    topology = parse_topology(BASE + "clients: [{name: a}]\nrouter: {block: [icmp/frag-needed, icmp]}\n")
    assert [b.label for b in topology.router.block] == ["icmp/frag-needed", "icmp"]
    assert not topology.router.block[0].covers("icmp", None)  # one type is no whole protocol
    assert Topology.model_validate_json(topology.model_dump_json()) == topology
    rules = next(f for f in plan_lab(topology, secrets=FixedSecrets("x")).node("router").files if f.path.endswith("rules.v4")).content
    match = "-p icmp -m icmp --icmp-type fragmentation-needed"
    assert f'-A FORWARD {match} -m comment --comment "vpnlab: block icmp/frag-needed" -j DROP' in rules
    assert f'-A OUTPUT {match} -m comment --comment "vpnlab: block icmp/frag-needed sent by the router" -j DROP' in rules
    assert rules.count("-A OUTPUT") == 1  # all of icmp: forwarded only, as before


@pytest.mark.parametrize("router,location,words", [
    ("{block: [icmp/echo]}", "router.block[0]", "'icmp/frag-needed'"),
    ("{block: [{proto: udp, port_low: 53, icmp_type: frag-needed}]}", "router.block[0]", "goes only with proto icmp"),
    ("{block: [{proto: icmp, icmp_type: redirect}]}", "router.block[0]", "goes only with proto icmp"),
    ("{allow_out: [icmp/frag-needed]}", "router.allow_out[0]", "a block rule only"),
])
def test_icmp_types_are_checked(router: str, location: str, words: str) -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology(BASE + f"clients: [{{name: a}}]\nrouter: {router}\n")
    [problem] = caught.value.problems
    assert problem.location == location and words in problem.message, (problem.location, problem.message)


def test_a_sized_check_pings_with_df_set() -> None:
    topology = load_topology(HERE.parent.parent / "topologies" / "scenario-pmtu-blackhole.yml")
    assert [s.check.size for s in topology.steps if s.check] == [None, 1372, 1372]
    ctx = plan_lab(topology, secrets=FixedSecrets("x")).tunnels[0]
    assert "ping -n -c 1 -W 1 -M do -s 1372 -I wg0 10.100.0.1" in client_probe(ctx, 1372)
    assert "(1372 bytes, DF set)" in client_probe(ctx, 1372)
    assert "-M do -s 1372 -I 10.100.0.1 10.100.0.2" in server_probe(ctx, "10.100.0.2", 1372)
    assert "-M do" not in client_probe(ctx)


@pytest.mark.parametrize("size", ["8", "9000", "'1372'", "true"])
def test_a_probe_size_is_a_whole_number_in_range(size: str) -> None:
    steps = f"steps: [{{check: {{expect: {{a/wireguard: down}}, size: {size}}}}}]\n"
    with pytest.raises(TopologyError) as caught:
        parse_topology(BASE + "clients: [{name: a}]\n" + steps)
    assert [p.location for p in caught.value.problems] == ["steps[0].check.size"]
