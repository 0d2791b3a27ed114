"""Router profiles: the shipped ones load, bad files say where they are wrong, topologies merge
a profile's router keys with their own, and the router behaviours the profiles need render."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.check.evidence import ConntrackEntry, Evidence, RouterEvidence, RuleHit, drops_for
from lab.check.explain import return_route_facts
from lab.errors import TopologyError
from lab.plan import plan_lab
from lab.profiles import BUILTIN_ORDER, ProfileError, builtin_profiles, load_profile, parse_profile
from lab.protocols import PROTOCOLS
from lab.resources import profiles_dir
from lab.router import comments
from lab.topology import load_topology, parse_topology

from .conftest import HERE, FixedSecrets

VALID = HERE / "topologies" / "valid"

GOOD_PROFILE = """
name: mine
description: my router at home
router: {nat: masquerade, helpers: []}
expect: {wireguard: up, openvpn-udp: up, openvpn-tcp: up, pptp: down, l2tp: up, l2tp-ipsec: up, ikev2: up}
reasons: {pptp: no helper}
"""


def topology_with_router(router: str, extra: str = "") -> str:
    return (
        f"name: t\nrouter: {router}\n{extra}servers: [{{name: vpn, protocols: [wireguard, pptp]}}]\n"
        "clients: [{name: alice}]\ntunnels: [{client: alice, server: vpn, protocol: pptp}]\n"
    )


def rules_of(topology) -> str:  # type: ignore[no-untyped-def]
    router = plan_lab(topology, secrets=FixedSecrets(topology.name)).node("router")
    return next(f for f in router.files if f.path.endswith("rules.v4")).content


def test_every_shipped_profile_loads_in_the_default_order() -> None:
    names = builtin_profiles()
    assert names[: len(BUILTIN_ORDER)] == list(BUILTIN_ORDER)
    for name in names:
        profile = load_profile(name)
        assert profile.name == name and profile.source == "builtin"
        assert profile.description
        assert list(profile.expect) == list(PROTOCOLS)
        for protocol, outcome in profile.expect.items():
            if outcome == "down":
                assert profile.reasons[protocol]


def test_shipped_profiles_make_valid_topologies() -> None:
    for name in builtin_profiles():
        topology = parse_topology(topology_with_router(f"{{profile: {name}}}"))
        assert topology.router.model_dump(mode="json")  # validated by the same Router model


def test_profile_rows_differ_where_their_router_does() -> None:
    assert load_profile("open").router["helpers"] == ["pptp"]
    assert load_profile("no-helpers").router["helpers"] == []
    assert load_profile("symmetric").router["nat"] == "masquerade-random-fully"
    assert load_profile("routed").router["nat"] == "none"
    assert load_profile("strict").router["allow_out"] == ["tcp/443", "udp/53"]


def test_a_user_profile_is_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text(GOOD_PROFILE)
    profile = load_profile(str(path))
    assert profile.name == "mine" and profile.source == str(path)
    assert profile.expect["pptp"] == "down" and profile.reasons["pptp"] == "no helper"


def test_a_bad_user_profile_names_the_file_and_every_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        "name: bad\ndescription: broken\nrouter: {nat: nope, helpers: [pptpp], colour: red}\n"
        "expect: {wireguard: up, openvpn-udp: up, openvpn-tcp: up, pptp: down, l2tp: sideways, ikev2: up, sstp: up}\n"
        "reasons: {}\n"
    )
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path))
    text = str(caught.value)
    lines = text.splitlines()
    assert f"{path}: router.nat: Input should be 'masquerade', 'masquerade-random-fully' or 'none'" in lines
    assert f"{path}: router.colour: unknown field (see the topology schema in the README)" in lines
    assert any(line.startswith(f"{path}: router.helpers[0]: unknown helper 'pptpp'") for line in lines)
    assert any(line.startswith(f"{path}: expect.sstp: unknown protocol 'sstp'") for line in lines)
    assert f"{path}: expect.l2tp: 'sideways' is not an outcome (allowed: up, down)" in lines
    assert f"{path}: expect.l2tp-ipsec: missing: say up or down for every protocol" in lines
    assert f"{path}: reasons.pptp: missing: a down cell needs the reason it stays down" in lines
    assert "hint: fix the fields named above" in text
    assert caught.value.exit_code == 2


def test_a_shipped_profile_error_is_located_under_profiles() -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile(GOOD_PROFILE.replace("nat: masquerade", "nat: hide"), source="profiles/x.yml")
    assert str(caught.value).startswith("profiles/x.yml: router.nat: ")


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'nope' \(known: open, no-helpers"):
        load_profile("nope")


def test_topology_with_unknown_profile_is_a_located_problem() -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology(topology_with_router("{profile: nope}"), source="t.yml")
    assert "  router.profile: unknown profile 'nope' (known: open, no-helpers," in str(caught.value)


def test_topology_overrides_merge_key_by_key_on_the_profile() -> None:
    topology = parse_topology(
        topology_with_router("{profile: open, passthrough: {pptp: false}, conntrack: {udp_timeout: 5}, block: [gre]}")
    )
    router = topology.router
    assert router.helpers == ["pptp"]  # from the profile
    assert router.passthrough == {"pptp": False, "l2tp": True, "ipsec": True}
    assert router.conntrack.udp_timeout == 5
    assert [b.label for b in router.block] == ["gre"]


def test_override_errors_are_located_in_the_topology() -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology(topology_with_router("{profile: strict, allow_out: [tcp/443, web]}"), source="t.yml")
    assert "  router.allow_out[1]: 'web' is not an allow_out rule" in str(caught.value)


def test_a_topology_names_a_user_profile_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "mine.yml").write_text(GOOD_PROFILE.replace("helpers: []", "helpers: [ftp]"))
    (tmp_path / "lab.yml").write_text(topology_with_router("{profile: mine.yml}"))
    assert load_topology(tmp_path / "lab.yml").router.helpers == ["ftp"]


def test_a_broken_user_profile_in_a_topology_is_reported_there(tmp_path: Path) -> None:
    (tmp_path / "mine.yml").write_text(GOOD_PROFILE.replace("nat: masquerade", "nat: hide"))
    (tmp_path / "lab.yml").write_text(topology_with_router("{profile: mine.yml}"))
    with pytest.raises(TopologyError, match=r"router.profile: profile .*mine.yml cannot be used: router.nat: "):
        load_topology(tmp_path / "lab.yml")


def test_servers_get_a_route_back_to_the_lan_only_without_nat() -> None:
    routed = load_topology(VALID / "profile-routed.yml")
    plan = plan_lab(routed, secrets=FixedSecrets(routed.name))
    assert plan.node("vpn").routes == ["10.20.0.0/24 via 203.0.113.1 dev eth0"]
    assert plan.node("vpn2").routes == ["10.20.0.0/24 via 203.0.113.1 dev eth0"]
    assert "MASQUERADE" not in rules_of(routed)
    natted = load_topology(VALID / "minimal.yml")
    assert plan_lab(natted, secrets=FixedSecrets(natted.name)).node("vpn").routes == []


def test_symmetric_masquerades_with_random_ports() -> None:
    rules = rules_of(load_topology(VALID / "profile-symmetric.yml"))
    assert f'--comment "{comments.NAT_MASQUERADE_RANDOM_FULLY}" -j MASQUERADE --random-fully' in rules


def test_strict_accepts_only_what_is_allowed_and_names_each_drop() -> None:
    rules = rules_of(load_topology(VALID / "profile-strict.yml")).splitlines()
    forward = [line for line in rules if line.startswith("-A FORWARD -i lan0 -o wan0")]
    assert [line.split(" -m comment")[0] for line in forward if line.endswith("ACCEPT")] == [
        "-A FORWARD -i lan0 -o wan0 -p tcp --dport 443",
        "-A FORWARD -i lan0 -o wan0 -p udp --dport 53",
        "-A FORWARD -i lan0 -o wan0 -p udp --dport 1194",  # the topology's override
    ]
    assert f'--comment "{comments.strict_not_allowed("udp/51820")}" -j DROP' in "\n".join(forward)
    assert "udp/1194)" not in "\n".join(forward)  # allowed: no named drop for it
    assert forward[-1].endswith(f'--comment "{comments.STRICT_NOT_ALLOWED}" -j DROP')
    assert not any("forward lan to wan" in line for line in rules)


def test_a_strict_drop_counts_for_the_flow_it_names() -> None:
    hits = [RuleHit("FORWARD", comments.strict_not_allowed("udp/51820"), 6), RuleHit("FORWARD", comments.STRICT_NOT_ALLOWED, 3)]
    chosen = drops_for(hits, PROTOCOLS["wireguard"].flows)
    assert chosen == [hits[0]]


CLIENT_GRE = "gre 47 29 src=192.168.100.10 dst=203.0.113.10 srckey=0x0 dstkey=0x4000 [UNREPLIED] src=203.0.113.10 dst={back} srckey=0x4000 dstkey=0x0 mark=0 use=1"
CONTROL = "tcp 6 431995 ESTABLISHED src=192.168.100.10 dst=203.0.113.10 sport=40000 dport=1723 src=203.0.113.10 dst={back} sport=1723 dport=40000 [ASSURED] mark=0 use=1"


def pptp_evidence(back: str, hits: tuple[RuleHit, ...]) -> Evidence:
    entries = tuple(ConntrackEntry.parse(line.format(back=back)) for line in (CONTROL, CLIENT_GRE))
    return Evidence(client={"syslog": "Outgoing call established"}, router=RouterEvidence(entries, hits))


def test_pptp_without_nat_says_gre_not_matched_to_a_call() -> None:
    hits = (RuleHit("FORWARD", comments.FORWARD_DEFAULT_DROP, 7),)
    facts = PROTOCOLS["pptp"].diagnose(pptp_evidence("192.168.100.10", hits))
    text = "; ".join(facts)
    assert "GRE from the server not matched to a call (no pptp helper)" in text
    assert f"rule '{comments.FORWARD_DEFAULT_DROP}' (FORWARD) dropped 7 packets" in text
    assert "not translated back" not in text


def test_pptp_behind_nat_says_gre_not_translated_back() -> None:
    hits = (RuleHit("INPUT", comments.INPUT_GRE_NOT_TIED, 5),)
    text = "; ".join(PROTOCOLS["pptp"].diagnose(pptp_evidence("203.0.113.1", hits)))
    assert "GRE from the server not translated back" in text and "not matched" not in text


def test_a_missing_return_route_is_named() -> None:
    topology = load_topology(VALID / "profile-routed.yml")
    ctx = plan_lab(topology).tunnels[0]
    log = {"log": "write UDPv4: Network is unreachable (code=101)"}
    assert return_route_facts(log, ctx) == [
        "the server has no route back to 10.20.0.0/24 (its log says 'Network is unreachable')"
    ]
    assert return_route_facts({"log": "all fine"}, ctx) == []


def test_profiles_are_shipped_from_the_top_level_folder() -> None:
    folder = profiles_dir()
    assert folder is not None and (folder / "open.yml").is_file()


@pytest.mark.parametrize("name", ["profile-strict", "profile-symmetric", "profile-routed"])
def test_a_merged_topology_survives_the_round_trip_through_a_running_lab(name: str) -> None:
    # a running lab keeps its topology as JSON (profile already merged) and is checked from it
    topology = load_topology(VALID / f"{name}.yml")
    assert parse_topology(topology.model_dump_json()) == topology
