"""`vpnlab report merge`: shard files in, one matrix and its reports out, exit 0/1/2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from lab.cli import main
from lab.matrix.reading import load

from .test_matrix_result import split
from .test_matrix_sample import sample_matrix


def write_shards(directory: Path, result) -> list[str]:
    paths = []
    for shard in split(result, 2):
        path = directory / f"shard-{shard.shard.replace('/', '-of-')}.json"
        path.write_text(json.dumps(shard.to_dict(), indent=2))
        paths.append(str(path))
    return paths


def all_as_expected():
    result = sample_matrix()
    result.cells = [replace(c, observed=c.expect) for c in result.cells]
    return result


def test_merge_of_passing_shards_exits_0_and_writes_the_reports(tmp_path: Path) -> None:
    shards = write_shards(tmp_path, all_as_expected())
    out = {name: tmp_path / f"matrix.{name}" for name in ("json", "junit", "markdown", "html")}
    options = [arg for name, path in out.items() for arg in (f"--{name}", str(path))]
    result = CliRunner().invoke(main, ["report", "merge", *shards, *options])
    assert result.exit_code == 0, result.output
    assert "PASS: 63 of 63 cells as expected" in result.output
    assert load(out["json"]).cells == all_as_expected().cells
    assert len(ET.parse(out["junit"]).getroot().findall("testsuite/testcase")) == 63
    assert out["markdown"].read_text().startswith("# vpnlab") and "<svg" in out["html"].read_text()


def test_merge_with_a_mismatch_exits_1_and_explains_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "merge", *write_shards(tmp_path, sample_matrix())])
    assert result.exit_code == 1, result.output
    assert "no-helpers · pptp: expected down, observed up" in result.output
    assert "FAIL: 61 of 63 cells as expected, 1 not, 1 skipped" in result.output


def test_a_missing_shard_exits_1(tmp_path: Path) -> None:
    first, _ = write_shards(tmp_path, all_as_expected())
    result = CliRunner().invoke(main, ["report", "merge", first])
    assert result.exit_code == 1 and "missing cells" in result.output


def test_a_malformed_file_exits_2_naming_it(tmp_path: Path) -> None:
    good, _ = write_shards(tmp_path, sample_matrix())
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "vpnlab-matrix/1", "cells": [')
    result = CliRunner().invoke(main, ["report", "merge", good, str(broken)])
    assert result.exit_code == 2
    assert f"error: {broken}: not valid JSON" in result.output and "Traceback" not in result.output


def test_a_wrong_shape_and_a_missing_file_exit_2_naming_them(tmp_path: Path) -> None:
    good, _ = write_shards(tmp_path, sample_matrix())
    data = json.loads(Path(good).read_text())
    data["cells"][4]["observed"] = "maybe"
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["report", "merge", str(odd)])
    assert result.exit_code == 2 and f"{odd}: cells[4].observed: 'maybe' is not one of" in result.output
    gone = tmp_path / "gone.json"
    result = CliRunner().invoke(main, ["report", "merge", good, str(gone)])
    assert result.exit_code == 2 and f"error: {gone}: no such file" in result.output


def test_contradicting_shards_exit_2_naming_the_cell(tmp_path: Path) -> None:
    first, second = write_shards(tmp_path, sample_matrix())
    data = json.loads(Path(second).read_text())
    clash = dict(json.loads(Path(first).read_text())["cells"][0], observed="down")
    data["cells"].append(clash)
    Path(second).write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["report", "merge", first, second])
    assert result.exit_code == 2
    assert f"open · {clash['protocol']} is in {first}" in result.output
