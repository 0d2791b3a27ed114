"""`vpnlab matrix` end to end on a reduced matrix: both runtimes, the four reports, shards merged.

Two profiles × four protocols: wireguard, openvpn-tcp and ikev2 run on the host engine, pptp
needs kernel PPP (a UML guest here), and no-helpers' pptp cell is down, so both verdicts and
both runtimes are covered. CI's budget is tight: the two shards run side by side.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

PROFILES = "open,no-helpers"
PROTOCOLS = "wireguard,openvpn-tcp,pptp,ikev2"


def matrix(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "VPNLAB_RUNTIME"}
    return subprocess.Popen([sys.executable, "-m", "lab", "matrix", "--profiles", PROFILES, "--protocols", PROTOCOLS,
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=env)


def finished(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out + err


def verdicts(data: dict) -> dict[tuple[str, str], tuple[str, str]]:
    return {(c["profile"], c["protocol"]): (c["expect"], c["observed"]) for c in data["cells"]}


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("matrix")
    code, text = finished(matrix("--json", str(out / "m.json"), "--junit", str(out / "m.xml"),
                                 "--markdown", str(out / "m.md"), "--html", str(out / "m.html")))
    return out, code, text


def test_every_cell_as_expected_and_exit_0(whole: tuple[Path, int, str]) -> None:
    out, code, text = whole
    assert code == 0, text
    data = json.loads((out / "m.json").read_text())
    assert data["passed"] and data["summary"] == {"cells": 8, "as_expected": 8, "mismatched": 0, "skipped": 0,
                                                  "missing": 0}
    cells = verdicts(data)
    assert cells[("no-helpers", "pptp")] == ("down", "down")
    assert cells[("open", "pptp")] == ("up", "up")
    assert "uml" in data["runtime"]  # pptp needed the guest's kernel
    assert all(p["nat"] for p in data["profiles"]), "every profile's NAT row measured"
    assert "PASS: 8 of 8 cells as expected" in text


def test_the_four_reports(whole: tuple[Path, int, str]) -> None:
    out, _, _ = whole
    suite = ET.parse(out / "m.xml").getroot()
    assert len(suite.findall(".//testcase")) == 8
    markdown = (out / "m.md").read_text()
    assert "no-helpers" in markdown and "pptp" in markdown
    html = (out / "m.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the HTML fetches something"
    assert "<svg" in html  # the lab's diagram, inline


def test_shards_merged_equal_the_unsharded_run(whole: tuple[Path, int, str], tmp_path: Path) -> None:
    out, _, _ = whole
    shards = [matrix("--shard", f"{k}/2", "--json", str(tmp_path / f"s{k}.json")) for k in (1, 2)]
    for proc in shards:
        code, text = finished(proc)
        assert code == 0, text
    merged = tmp_path / "merged.json"
    proc = subprocess.run([sys.executable, "-m", "lab", "report", "merge", str(tmp_path / "s1.json"),
                           str(tmp_path / "s2.json"), "--json", str(merged), "--html", str(tmp_path / "merged.html")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    whole_data = json.loads((out / "m.json").read_text())
    merged_data = json.loads(merged.read_text())
    assert verdicts(merged_data) == verdicts(whole_data)
    assert [p["name"] for p in merged_data["profiles"]] == [p["name"] for p in whole_data["profiles"]]
    assert merged_data["protocols"] == whole_data["protocols"]
    assert merged_data["lab"] == whole_data["lab"]
