"""The matrix result model: JSON round trip, located errors, shards that partition the matrix, merging them back."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lab.matrix.merge import merge
from lab.matrix.reading import load
from lab.matrix.result import (
    FORMAT, Cell, MatrixFileError, MatrixResult, MergeError, NatBehaviour, ShardError, parse_shard, shard_cells,
)

from .test_matrix_sample import PROTOCOLS, sample_matrix


def split(result: MatrixResult, n: int) -> list[MatrixResult]:
    """The shard results N CI jobs would write for this matrix."""
    pairs = [c.key for c in result.cells]
    shards = []
    for k in range(1, n + 1):
        chosen = set(shard_cells(pairs, k, n))
        shards.append(replace(
            result,
            cells=[c for c in result.cells if c.key in chosen],
            shard=f"{k}/{n}",
            seconds={"up": 10.0 * k, "check": 1.5, "total": 10.0 * k + 1.5},
        ))
    return shards


def test_json_round_trip_keeps_every_field() -> None:
    result = sample_matrix()
    data = json.loads(json.dumps(result.to_dict()))
    assert data["format"] == FORMAT and data["passed"] is False
    assert data["summary"] == {"cells": 63, "as_expected": 61, "mismatched": 1, "skipped": 1, "missing": 0}
    assert MatrixResult.from_dict(data) == result


def test_cell_json_has_the_tunnel_fields_and_the_matrix_ones() -> None:
    cell = sample_matrix().to_dict()["cells"][0]
    assert set(cell) == {"profile", "client", "server", "protocol", "expect", "observed", "reason", "seconds",
                         "evidence", "expected_reason", "passed"}


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["cells"][3].update(observed="sideways"), "cells[3].observed: 'sideways' is not one of"),
    (lambda d: d["cells"][5].pop("protocol"), "cells[5]: missing 'protocol'"),
    (lambda d: d["cells"][0].update(seconds="slow"), "cells[0].seconds: expected int or float, got str"),
    (lambda d: d.update(cells={}), "result.cells: expected list, got dict"),
    (lambda d: d["profiles"][2]["nat"].pop("mapping"), "profiles[2].nat: missing 'mapping'"),
    (lambda d: d.update(shard="4/3"), "result.shard: shard '4/3': expected K/N"),
    (lambda d: d.pop("format"), "not a matrix result"),
])
def test_a_malformed_result_names_the_field(change, message) -> None:
    data = sample_matrix().to_dict()
    change(data)
    with pytest.raises(MatrixFileError) as caught:
        MatrixResult.from_dict(data, "shard-2.json")
    assert str(caught.value).startswith("shard-2.json: ")
    assert message in str(caught.value)


def test_a_run_result_is_told_apart(tmp_path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"version": "0.1.0", "name": "demo", "tunnels": []}))
    with pytest.raises(MatrixFileError, match=r"run\.json: not a matrix result \(a 'vpnlab run' result"):
        load(path)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 9, 63, 64, 100])
def test_shards_partition_the_matrix(n: int) -> None:
    pairs = [c.key for c in sample_matrix().cells]
    shards = [shard_cells(pairs, k, n) for k in range(1, n + 1)]
    union = [pair for shard in shards for pair in shard]
    assert sorted(union) == sorted(pairs)  # every cell once: the union is the whole, no cell in two shards
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # round robin keeps them even
    assert shard_cells(list(reversed(pairs)), 1, n) == shards[0]  # the order pairs come in does not matter


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", ""])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(ShardError):
        parse_shard(text)
    assert parse_shard("2/3") == (2, 3)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_merging_the_shards_gives_the_whole_matrix(n: int) -> None:
    whole = sample_matrix()
    shards = split(whole, n)
    merged = merge(list(reversed(shards)))  # argument order does not matter
    assert merged.cells == whole.cells
    assert merged.profiles == whole.profiles and merged.protocols == whole.protocols
    assert merged.passed == whole.passed and merged.shard is None
    assert merged.seconds["total"] == pytest.approx(sum(10.0 * k + 1.5 for k in range(1, n + 1)))
    assert merged.shard_seconds == {f"{k}/{n}": 10.0 * k + 1.5 for k in range(1, n + 1)}
    assert MatrixResult.from_dict(merged.to_dict()) == merged


def test_a_missing_shard_shows_and_fails() -> None:
    shards = split(sample_matrix(), 3)
    merged = merge(shards[:2])
    assert merged.shard == "1/3+2/3"
    assert len(merged.missing) == 21 and not merged.passed


def test_a_cell_with_two_outcomes_is_an_error_naming_it() -> None:
    one, two = split(sample_matrix(), 2)
    clash = replace(one.cells[0], observed="down")
    two = replace(two, cells=[*two.cells, clash])
    with pytest.raises(MergeError, match=rf"{clash.profile} · {clash.protocol} is in a\.json .* and in b\.json"):
        merge([one, two], sources=["a.json", "b.json"])
    assert merge([one, replace(two, cells=[*two.cells[:-1], one.cells[0]])]).cells == sample_matrix().cells


def test_disagreeing_runtimes_are_listed() -> None:
    one, two = split(sample_matrix(), 2)
    merged = merge([one, replace(two, runtime="docker", kernel="6.8.0")])
    assert merged.runtime == "uml, docker" and merged.kernel == "6.6.15-uml, 6.8.0"


def test_a_nat_measured_in_one_shard_only_is_kept() -> None:
    one, two = split(sample_matrix(), 2)
    one = replace(one, profiles=[replace(p, nat=None) for p in one.profiles])
    merged = merge([one, two])
    assert [p.nat for p in merged.profiles] == [p.nat for p in sample_matrix().profiles]
    assert all(p.nat is None for p in one.profiles)  # the inputs are left as they were


@pytest.mark.parametrize(("mapping", "filtering", "short"), [
    ("endpoint-independent", "address-and-port-dependent", "EIM/APDF"),
    ("address-and-port-dependent", "address-dependent", "APDM/ADF"),
    ("none", "none", "no NAT"),
    ("none", "address-and-port-dependent", "no NAT, APDF"),
    ("unknown", "unknown", "?/?"),
])
def test_nat_short_form(mapping: str, filtering: str, short: str) -> None:
    assert NatBehaviour(mapping, filtering, "").short == short


def test_cell_lookup() -> None:
    result = sample_matrix()
    assert result.cell("strict", "openvpn-tcp").observed == "up"
    assert result.cell("strict", "gopher") is None
    assert [c.protocol for c in result.cells[:7]] == PROTOCOLS


def test_a_cell_is_made_from_a_run_tunnel_result() -> None:
    from lab.check.results import TunnelResult

    tunnel = TunnelResult("alice", "vpn", "pptp", "down", "down", "GRE dropped", 20.5, {"router_drops": ["x"]})
    cell = Cell.from_tunnel("pptp-off", tunnel, "the router drops GRE")
    assert cell.to_dict() == {**tunnel.to_dict(), "profile": "pptp-off", "expected_reason": "the router drops GRE"}
    assert cell.anchor == "cell-pptp-off-pptp"
