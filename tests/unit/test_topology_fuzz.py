"""Property-based fuzzing of topology validation and of what a valid topology renders.

Starting from every valid topology shipped (topologies/, tests/unit/topologies/valid), the
tests mutate values into hostile ones (shell and iptables payloads, newlines, quotes, very
long strings, huge numbers, nested structures, wrong types, deleted and unknown keys) and
assert two properties:

- loading returns a Topology or raises the located TopologyError, never anything else;
- a topology that loads plans and renders (every node's files, setup script, the tunnel
  check scripts, the wiring script) without error, and no payload reaches the output.

Every payload carries the marker ``PWN``: no name, protocol, rule or address that validation
accepts can contain it (names are lowercase, rules are rebuilt from parsed numbers), so the
marker in a rendered file means an unchecked input string went through.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lab.check.scripts import tunnel_files
from lab.errors import TopologyError
from lab.plan import plan_lab
from lab.runtime.wiring import plan_ports, wiring_script
from lab.topology import Topology, parse_topology

from .conftest import HERE, FixedSecrets

SEED_FILES = sorted((HERE / "topologies" / "valid").glob("*.yml")) + sorted((HERE.parent.parent / "topologies").glob("*.yml"))
SEEDS = [(path.read_text(), path.parent) for path in SEED_FILES]
MARKER = "PWN"
FUZZ = settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)

PAYLOADS = [
    f"X;touch /tmp/{MARKER}", f"$(touch /tmp/{MARKER})", f"`{MARKER}`", f"{MARKER}\n#", f"all -j ACCEPT\n#{MARKER}",
    f"'{MARKER}'", f'"{MARKER}"', f"{MARKER}|sh", f"tcp/80\n-A FORWARD -j {MARKER}", f"udp/53;{MARKER}",
    f"{MARKER} " * 3000, f"alice\n{MARKER}", f"vpn {MARKER}", f"wireguard\n{MARKER}", f"10.20.0.0/24\n{MARKER}",
    f"${{{MARKER}}}", f"{{{{ {MARKER} }}}}", f"{MARKER}\x00", f"\\n{MARKER}",
]
# Values that pass some check, so that mutated topologies still load often enough to render.
NEAR_VALID: list[Any] = [
    "wireguard", "openvpn-udp", "openvpn-tcp", "pptp", "l2tp", "l2tp-ipsec", "ikev2", "alice", "bob", "vpn", "vpn2",
    "udp/1194", "tcp/1-65535", "udp/500-4500", "gre", "esp", "icmp", "masquerade", "masquerade-random-fully", "none",
    "up", "down", "10.20.0.0/24", "192.168.0.0/26", "172.16.0.0/16", "198.51.100.0/25", "203.0.113.0/26", "open",
    "strict", "pptp", "ftp", 0, 1, 30, 65535, 65536, -1, 120, 121, 0.5, True, False, None,
    {"proto": "tcp", "port_low": 80}, {"proto": "gre"}, {"proto": "udp", "port_low": 1, "port_high": 65535},
    {"name": "carol"}, {"name": "vpn3", "protocols": ["wireguard"]},
    {"client": "alice", "server": "vpn", "protocol": "wireguard"},
]
KEYS = [
    "name", "description", "router", "network", "servers", "clients", "tunnels", "nat_probe", "profile", "nat",
    "helpers", "passthrough", "block", "allow_out", "conntrack", "udp_timeout", "lan", "wan", "protocols", "client",
    "server", "protocol", "expect", "deadline", "options", "psk", "fallback", "proto", "port_low", "port_high", "pptp",
]


def payload_strings() -> st.SearchStrategy[str]:
    near = st.sampled_from([v for v in NEAR_VALID if isinstance(v, str)])
    glue = st.sampled_from(["", "\n", " ", ";", "'", '"', "$(", "`", "|", "&", "\r", "\t", "#", "\\"])
    return st.one_of(
        st.sampled_from(PAYLOADS),
        st.builds(lambda a, g, b: a + g + MARKER + b, near, glue, st.sampled_from(["", ")", "`", "\n", ";x"])),
        st.builds(lambda g, a: MARKER + g + a, glue, near),
    )


# A block or allow_out rule in its mapping form, with a hostile field.
RULE_MAPPINGS = st.fixed_dictionaries(
    {"proto": st.one_of(st.sampled_from(["tcp", "udp", "gre"]), payload_strings())},
    optional={"port_low": st.one_of(st.integers(-5, 70000), payload_strings()), "port_high": st.integers(-5, 70000)},
)
SCALARS = st.one_of(
    RULE_MAPPINGS,
    st.sampled_from(NEAR_VALID), payload_strings(), st.text(max_size=20), st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the document: the root, each mapping value and each list item."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += paths(value, (*prefix, i))
    return found


def fresh(draw: Any) -> Any:
    """A drawn value the document may own: strategies can hand out the same mutable object again,
    and a later mutation inside it would change what the next example draws (flaky generation)."""
    return copy.deepcopy(draw(VALUES))


def mutate(doc: Any, draw: Any) -> Any:
    path = draw(st.sampled_from(paths(doc)))
    op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add-key", "duplicate", "wrap"]))
    if not path:
        return fresh(draw) if op == "replace" else doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if op == "replace":
        parent[last] = fresh(draw)
    elif op == "delete":
        del parent[last]
    elif op == "add-key" and isinstance(parent[last], dict):
        parent[last][draw(st.sampled_from(KEYS))] = fresh(draw)
    elif op == "duplicate" and isinstance(parent[last], list) and parent[last]:
        parent[last].append(copy.deepcopy(draw(st.sampled_from(parent[last]))))
    elif op == "wrap":
        parent[last] = [parent[last]]
    return doc


def load_or_refuse(text: str, base_dir: Path) -> Topology | None:
    """The contract: a Topology, or a TopologyError with located problems; anything else fails."""
    try:
        return parse_topology(text, source="fuzz.yml", base_dir=base_dir)
    except TopologyError as error:
        assert error.problems and error.exit_code == 2
        assert all(isinstance(p.location, str) and p.message for p in error.problems)
        return None


def rendered(topology: Topology) -> list[tuple[str, str]]:
    """(where, text) for everything a lab would write or run from this topology."""
    plan = plan_lab(topology, secrets=FixedSecrets(topology.name))
    out = []
    for node in plan.nodes:
        out.append((f"{node.name}: setup.sh", node.setup_script()))
        out.append((f"{node.name}: spec", repr((node.links, node.routes, node.sysctls, node.devices))))
        out += [(f"{node.name}: {f.path}", f"{f.path}\n{f.content}") for f in node.files]
    for ctx in plan.tunnels:
        out += [(f"{ctx.tunnel.id}: {f.path}", f"{f.path}\n{f.content}") for f in tunnel_files(ctx)]
    pids = {node.name: 1000 + i for i, node in enumerate(plan.nodes)}
    out.append(("wiring.sh", wiring_script(plan_ports(plan.nodes, pids))))
    return out


def assert_renders_clean(topology: Topology) -> None:
    for where, text in rendered(topology):
        assert MARKER.lower() not in text.lower(), f"an unchecked input string reached {where}"


@pytest.mark.parametrize("text,base_dir", SEEDS, ids=[p.stem for p in SEED_FILES])
def test_every_seed_loads_and_renders_without_the_marker(text: str, base_dir: Path) -> None:
    topology = load_or_refuse(text, base_dir)
    assert topology is not None
    assert_renders_clean(topology)


@FUZZ
@given(st.data())
def test_mutated_topologies_load_or_are_refused_and_render_clean(data: st.DataObject) -> None:
    text, base_dir = data.draw(st.sampled_from(SEEDS))
    doc = yaml.safe_load(text)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        doc = mutate(doc, data.draw)
    topology = load_or_refuse(yaml.safe_dump(doc, allow_unicode=True), base_dir)
    event("loaded" if topology else "refused")  # --hypothesis-show-statistics: how many got to render
    if topology is not None:
        assert_renders_clean(topology)


@FUZZ
@given(st.data())
def test_corrupted_topology_text_loads_or_is_refused(data: st.DataObject) -> None:
    """Raw text edits: YAML syntax, tags, anchors and aliases, control characters."""
    text, base_dir = data.draw(st.sampled_from(SEEDS))
    pieces = st.one_of(
        st.sampled_from(["\n", ":", "- ", "[", "]", "{", "}", "&a ", "*a", "!!set ", "!!binary ", "? ", "'", '"', "|", ">",
                         "\t", "%YAML 1.1\n", "---\n", "...\n", "\x00", "\ufeff", "#"]),
        payload_strings(),
        st.text(max_size=5),
    )
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        cut = data.draw(st.integers(min_value=0, max_value=3))
        text = text[:at] + data.draw(pieces) + text[at + cut:]
    topology = load_or_refuse(text, base_dir)
    event("loaded" if topology else "refused")
    if topology is not None:
        assert_renders_clean(topology)


# One field of a valid seed made hostile, with what could pass its check nearby: the seed
# stays valid elsewhere, so what validation lets through is rendered and looked at.
RULES = st.lists(st.one_of(RULE_MAPPINGS, payload_strings(), st.sampled_from(["udp/1194", "tcp/80-90", "gre", "esp"])),
                 min_size=1, max_size=3)
HOSTILE_FIELDS: dict[tuple[Any, ...], st.SearchStrategy[Any]] = {
    ("router", "block"): RULES,
    ("router", "allow_out"): RULES,
    ("router", "helpers"): st.lists(st.one_of(payload_strings(), st.sampled_from(["pptp", "ftp", "sip"])), max_size=3),
    ("router", "passthrough"): st.dictionaries(st.one_of(payload_strings(), st.sampled_from(["pptp", "l2tp"])), st.booleans(), max_size=2),
    ("router", "nat"): payload_strings(),
    ("network", "lan"): st.one_of(payload_strings(), st.sampled_from(["10.20.0.0/24", "192.168.0.0/26", "127.0.0.0/24"])),
    ("network", "wan"): st.one_of(payload_strings(), st.sampled_from(["198.51.100.0/25", "203.0.113.64/26"])),
    ("name",): payload_strings(),
    ("description",): payload_strings(),
    ("servers", 0, "name"): payload_strings(),
    ("servers", 0, "protocols"): st.lists(st.one_of(payload_strings(), st.sampled_from(["wireguard", "pptp"])), min_size=1, max_size=2),
    ("clients", 0, "name"): payload_strings(),
    ("tunnels", 0, "options"): st.dictionaries(st.one_of(payload_strings(), st.sampled_from(["psk", "fallback"])), payload_strings(), max_size=2),
    ("tunnels", 0, "client"): payload_strings(),
    ("tunnels", 0, "protocol"): payload_strings(),
}


@FUZZ
@given(st.data())
def test_one_hostile_field_in_a_valid_topology_is_refused_or_renders_clean(data: st.DataObject) -> None:
    text, base_dir = data.draw(st.sampled_from(SEEDS))
    doc = yaml.safe_load(text)
    path = data.draw(st.sampled_from(list(HOSTILE_FIELDS)))
    place = doc
    for part in path[:-1]:
        if isinstance(part, int) and not (isinstance(place, list) and place):
            return  # this seed has no tunnels
        place = place.setdefault(part, {}) if isinstance(part, str) else place[part]
    place[path[-1]] = data.draw(HOSTILE_FIELDS[path])
    topology = load_or_refuse(yaml.safe_dump(doc, allow_unicode=True), base_dir)
    event("loaded" if topology else "refused")
    if topology is not None:
        assert_renders_clean(topology)
