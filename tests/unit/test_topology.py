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


BASE = "name: x\nservers: [{name: vpn, protocols: [wireguard]}]\nclients: [{name: a}]\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        parse_topology(text)
    return [str(p) for p in caught.value.problems]


# --- block and allow_out rules written as mappings pass the text form's checks -------------

@pytest.mark.parametrize(
    "rule,says",
    [
        ('{proto: "all -j ACCEPT\\n#"}', "proto 'all -j ACCEPT\\n#' is not allowed"),
        ("{proto: tcp}", "'tcp' needs port_low"),
        ("{proto: udp, port_low: 0}", "'udp/0': ports must be 1-65535"),
        ("{proto: tcp, port_low: 70000}", "'tcp/70000': ports must be 1-65535"),
        ("{proto: tcp, port_low: 90, port_high: 80}", "'tcp/90-80': ports must be 1-65535 and LOW <= HIGH"),
        ("{proto: tcp, port_low: '80; reboot'}", "port '80; reboot' in a block rule must be a whole number"),
        ("{proto: tcp, port_low: true}", "port 'True' in a block rule must be a whole number"),
        ("{proto: gre, port_low: 5}", "'gre' has no ports"),
        ("{proto: TCP, port_low: 80}", "proto 'TCP' is not allowed"),
        ("{proto: [tcp]}", "proto 'a list of 1 item(s)' is not allowed"),
    ],
)
@pytest.mark.parametrize("field", ["block", "allow_out"])
def test_a_rule_written_as_a_mapping_is_checked_like_text(field: str, rule: str, says: str) -> None:
    found = problems_of(BASE + f"router: {{{field}: [{rule}]}}\n")
    says = says.replace("a block rule", "an allow_out rule") if field == "allow_out" else says
    assert len(found) == 1 and found[0].startswith(f"router.{field}[0]: ") and says in found[0], found


def test_a_rule_as_a_mapping_that_is_right_means_what_its_text_means() -> None:
    topology = parse_topology(BASE + "router: {block: [{proto: udp, port_low: 1194}, {proto: esp}], allow_out: [{proto: tcp, port_low: 1, port_high: 9}]}\n")
    assert [r.label for r in topology.router.block] == ["udp/1194", "esp"]
    assert topology.router.allow_out is not None and topology.router.allow_out[0].label == "tcp/1-9"


def test_a_kept_topology_reads_back_with_its_rules() -> None:
    """A running lab's topology is kept as JSON (rules as mappings) and read back from it."""
    from lab.topology import Topology

    topology = load_topology(HERE.parent.parent / "topologies" / "home-office.yml")
    assert Topology.model_validate_json(topology.model_dump_json()) == topology


# --- the LAN: private, and clear of the WAN and the tunnel networks ------------------------

@pytest.mark.parametrize(
    "lan,says",
    [
        ("127.0.0.0/24", "127.0.0.0/24 is loopback"),
        ("0.0.0.0/24", "0.0.0.0/24 is in 0.0.0.0/8"),
        ("169.254.0.0/24", "169.254.0.0/24 is link-local"),
        ("224.0.0.0/24", "224.0.0.0/24 is multicast"),
        ("240.0.0.0/24", "240.0.0.0/24 is reserved"),
        ("203.0.113.0/24", "203.0.113.0/24 is in a documentation range, where the WAN lives"),
        ("198.18.0.0/24", "198.18.0.0/24: the LAN must be a /16 to /26 inside 10.0.0.0/8"),
        ("10.100.5.0/24", "10.100.5.0/24 overlaps wireguard's tunnel network 10.100.0.0/16"),
        ("10.106.0.0/16", "10.106.0.0/16 overlaps ikev2's tunnel network 10.106.0.0/16"),
    ],
)
def test_a_lan_no_lab_can_use_is_refused_with_what_to_do(lan: str, says: str) -> None:
    found = problems_of(BASE + f"network: {{lan: {lan}}}\n")
    assert len(found) == 1 and found[0].startswith(f"network.lan: {says}"), found
    assert "for example 192.168.100.0/24" in found[0]


def test_every_lan_clear_of_the_tunnel_networks_is_accepted() -> None:
    for lan in ("10.0.0.0/16", "10.107.0.0/24", "172.16.0.0/26", "192.168.0.0/16"):
        assert str(parse_topology(BASE + f"network: {{lan: {lan}}}\n").network.lan) == lan


# --- more nodes than addresses: refused by validate, with where --------------------------

def test_more_clients_than_the_lan_holds_are_refused_by_validation() -> None:
    clients = ", ".join(f"{{name: c{i}}}" for i in range(70))
    text = f"name: x\nnetwork: {{lan: 192.168.0.0/26}}\nservers: [{{name: vpn, protocols: [wireguard]}}]\nclients: [{clients}]\n"
    [found] = problems_of(text)
    assert found.startswith("clients: 70 clients do not fit in the LAN 192.168.0.0/26: it has room for 52")
    fitting = ", ".join(f"{{name: c{i}}}" for i in range(52))
    plan_addresses(parse_topology(text.replace(clients, fitting)))


def test_more_servers_than_the_wan_holds_with_the_nat_probe_are_refused() -> None:
    """The WAN's room is the servers' and the STUN node's two addresses together (the schema's
    50 servers just fit a /26 WAN with the probe, so one more is added past the schema)."""
    from lab.topology.addressing import capacity_problems
    from lab.topology.model import Server, Topology

    servers = [{"name": f"s{i}", "protocols": ["wireguard"]} for i in range(50)]
    data = {"name": "x", "network": {"wan": "203.0.113.0/26"}, "servers": servers, "clients": [{"name": "a"}], "nat_probe": True}
    fitting = Topology.model_validate(data)
    assert capacity_problems(fitting) == []
    over = fitting.model_copy(update={"servers": [*fitting.servers, Server(name="extra", protocols=["wireguard"])]})
    [problem] = capacity_problems(over)
    assert problem.location == "servers"
    assert problem.message.startswith("51 servers do not fit in the WAN 203.0.113.0/26: it has room for 50 besides the NAT probe's 2")
    assert capacity_problems(over.model_copy(update={"nat_probe": False})) == []


# --- whatever a file holds: one located TopologyError, never a traceback ---------------------

ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}' if prev else 'lol'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi")
)

HOSTILE_FILES = {
    "unhashable-list-key": (BASE + "? [a, b]: 1\n").encode(),
    "mapping-as-key": (BASE + "? {a: 1}: 1\n").encode(),
    "not-utf-8": BASE.encode() + b"description: caf\xe9\n",
    "huge-float": (BASE + "router: {conntrack: {udp_timeout: 1e400}}\n").encode(),
    "huge-int": (BASE + "router: {conntrack: {udp_timeout: " + "9" * 5000 + "}}\n").encode(),
    "huge-hex-int": (BASE.replace("[wireguard]", "[0x" + "f" * 5000 + "]")).encode(),
    "deep-nesting": (BASE + "description: " + "[" * 10000 + "]" * 10000 + "\n").encode(),
    "deep-by-aliases": (BASE + "x: &x " + "[" * 30 + "]" * 30 + "\ndescription: " + "[" * 30 + "*x" + "]" * 30 + "\n").encode(),
    "self-containing-alias": (BASE + "description: &me [*me]\n").encode(),
    "binary-junk": bytes(range(256)) * 4,
    "empty": b"",
    "alias-bomb": (ALIAS_BOMB + BASE).encode(),
    "alias-bomb-in-a-field": (ALIAS_BOMB + BASE.replace("[wireguard]", "*i")).encode(),
    "yaml-set": BASE.replace("[wireguard]", "!!set {? wireguard, ? wiregaurd}").encode(),
    "binary-name": BASE.replace("{name: a}", "{name: !!binary YQ==}").encode(),
    "python-object": (BASE + "description: !!python/object/apply:os.system ['true']\n").encode(),
    "too-big": BASE.encode() + b"#" * (2 << 20),
    "long-text": (BASE + "description: " + "x" * 5000 + "\n").encode(),
}


@pytest.mark.parametrize("content", HOSTILE_FILES.values(), ids=HOSTILE_FILES.keys())
def test_a_hostile_file_gives_one_located_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "hostile.yml"
    path.write_bytes(content)
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    error = caught.value
    assert error.source == str(path) and error.exit_code == 2 and 1 <= len(error.problems) <= 3
    assert len(str(error)) < 2000, "a message stays readable"


def test_hostile_files_say_where() -> None:
    where = {}
    for case in ("not-utf-8", "huge-int", "deep-nesting", "unhashable-list-key", "yaml-set", "binary-name"):
        with pytest.raises(TopologyError) as caught:
            parse_topology_bytes(HOSTILE_FILES[case])
        where[case] = str(caught.value.problems[0])
    assert where["not-utf-8"] == "line 4, column 17: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    assert where["huge-int"].startswith("line 4, column 35: not valid YAML: a number this large")
    assert where["deep-nesting"].startswith("line 4, column ") and "nested more than 32 levels deep" in where["deep-nesting"]
    assert where["unhashable-list-key"].startswith("line 4, column 3: not valid YAML: found unhashable key")
    assert where["yaml-set"] == "servers[0].protocols: a YAML set (!!set) is not allowed here: write a list, e.g. [a, b]"
    assert where["binary-name"].startswith("clients[0].name: binary data (!!binary) is not allowed here")


def parse_topology_bytes(content: bytes) -> None:
    from lab.topology.source import decode

    parse_topology(decode(content, "t.yml"), source="t.yml")


@pytest.mark.parametrize(
    "text",
    [
        BASE.replace("[wireguard]", "[[wireguard]]"),
        BASE + "router: {helpers: [[pptp]]}\n",
        BASE + "tunnels: [{client: [a], server: vpn, protocol: wireguard}]\n",
        BASE + "tunnels: [{client: a, server: {vpn: 1}, protocol: wireguard}]\n",
        BASE + "tunnels: [{client: a, server: vpn, protocol: [wireguard]}, {client: a, server: vpn, protocol: [wireguard]}]\n",
    ],
    ids=["protocol", "helper", "tunnel-client", "tunnel-server", "tunnel-protocol"],
)
def test_a_list_where_a_name_belongs_is_a_shape_problem(text: str) -> None:
    found = problems_of(text)
    assert found and all("Input should be a valid string" in p for p in found), found


def test_validate_on_the_command_line_exits_2_without_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    for case in ("deep-nesting", "not-utf-8", "alias-bomb", "huge-int"):
        path = tmp_path / f"{case}.yml"
        path.write_bytes(HOSTILE_FILES[case])
        run = subprocess.run([sys.executable, "-m", "lab", "validate", str(path)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, (case, run.stderr)
        assert "Traceback" not in run.stderr + run.stdout and "1 problem(s) in the topology" in run.stderr, (case, run.stderr)
