"""Every output of the matrix: terminal and Markdown (golden), JUnit, HTML (offline, escaped, screenshot), files."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from lab.matrix import reports
from lab.matrix.html import render_html
from lab.matrix.junit import render_junit
from lab.matrix.markdown import render_markdown
from lab.matrix.reading import load
from lab.matrix.terminal import print_matrix

from .conftest import HERE, compare_golden
from .test_matrix_sample import HOSTILE, sample_matrix

GOLDEN = HERE / "golden" / "matrix"


def terminal_text(result) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    print_matrix(result, console)
    return console.export_text()


def test_terminal_table_golden() -> None:
    compare_golden(GOLDEN / "terminal.txt", terminal_text(sample_matrix()))


def test_terminal_survives_markup_in_every_reason() -> None:
    result = sample_matrix()
    result.cells = [replace(c, reason=HOSTILE, expected_reason="[bold]" + HOSTILE, observed="error")
                    if c.protocol == "pptp" else c for c in result.cells]
    text = terminal_text(result)
    assert text.count("[/x]") == 2 * 9 and "[bold]xl2tpd" in text


def test_markdown_golden() -> None:
    compare_golden(GOLDEN / "matrix.md", render_markdown(sample_matrix()))


def test_markdown_links_every_cell_to_its_heading() -> None:
    text = render_markdown(sample_matrix())
    links = re.findall(r"\]\(#(cell-[\w-]+)\)", text)
    anchors = re.findall(r'<a id="(cell-[\w-]+)"></a>', text)
    assert len(anchors) == 63 and set(links) == set(anchors)
    outside_code = re.sub(r"(?ms)^(`{3,})text\n.*?^\1$", "", text)
    assert "<script>" not in outside_code and "\\<script\\>" in outside_code  # escaped outside code blocks
    assert "```mermaid\nflowchart LR" in text


def test_junit_has_a_testcase_per_cell() -> None:
    root = ET.fromstring(render_junit(sample_matrix()))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "vpnlab-matrix"
    cases = suite.findall("testcase")
    assert len(cases) == 63
    failed = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("vpnlab.matrix.no-helpers", "pptp")]
    assert failed[0].find("failure").get("message") == "expected down, observed up"
    assert "no pptp helper" in failed[0].find("failure").text
    assert [(c.get("classname"), c.get("name")) for c in skipped] == [("vpnlab.matrix.routed", "l2tp-ipsec")]
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("63", "1", "1", "0")
    assert float(cases[1].get("time")) == sample_matrix().cells[1].seconds


def test_junit_error_cells_and_control_characters() -> None:
    result = sample_matrix()
    result.cells[0] = replace(result.cells[0], observed="error", reason="daemon died \x1b[31m\x00\x07 hard")
    root = ET.fromstring(render_junit(result))  # raw control characters would make this fail to parse
    error = root.find("testsuite/testcase/error")
    assert error is not None and "daemon died  hard" in error.text


class Tags(HTMLParser):
    """The tag names and every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.targets += [value or "" for name, value in attrs if name in ("src", "href", "xlink:href", "action",
                                                                         "srcset", "data", "poster", "background")]


def test_html_is_offline_and_escaped() -> None:
    text = render_html(sample_matrix())
    assert "http://" not in text and "https://" not in text
    tags = Tags()
    tags.feed(text)
    assert tags.targets and all(t.startswith("#") for t in tags.targets), "every link stays inside the page"
    assert not tags.names & {"img", "link", "iframe", "object", "embed", "audio", "video", "image", "use"}
    assert "@import" not in text and "url(" not in text
    assert "<script>alert" not in text and "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in text
    assert text.count("<script>") == 1  # the page's own few lines that open a linked cell
    ids = set(re.findall(r'id="(cell-[\w-]+)"', text))
    assert len(ids) == 63 and set(re.findall(r'href="#(cell-[\w-]+)"', text)) <= ids
    assert "<svg" in text and "EIM/APDF" in text and "6.6.15-uml" in text


def test_reports_are_written_before_anything_else_can_fail(tmp_path: Path, monkeypatch) -> None:
    def broken(result):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr("lab.matrix.html.render_html", broken)
    paths = {name: tmp_path / "out" / f"m.{name}" for name in ("json", "junit", "markdown", "html")}
    with pytest.raises(RuntimeError):
        reports.write_reports(sample_matrix(), **paths)
    assert load(paths["json"]) == sample_matrix()
    assert paths["junit"].exists() and paths["markdown"].exists() and not paths["html"].exists()
    assert json.loads(paths["json"].read_text())["cells"][0]["profile"] == "open"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium; ci/install.sh installs it in CI)")
def test_html_renders_in_a_browser(tmp_path: Path) -> None:
    page = tmp_path / "matrix.html"
    reports.write_reports(sample_matrix(), html=page)
    shot = tmp_path / "matrix.png"
    run = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,1800", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.exists(), f"chromium wrote no screenshot (exit {run.returncode}): {run.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000, "the screenshot is nearly empty: the page did not render"
