"""What the CLI shows of text it did not write (daemon logs, reasons, paths): shown literally, never
read as Rich markup, and the result file written before anything is printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from lab import cli, orchestrate, resources
from lab.check.results import RunResult, TunnelResult
from lab.report import print_result

EVIL = "[/x] [bold]evil[/bold] \x1b[31m red"


def evil_result() -> RunResult:
    tunnels = [
        TunnelResult("c1", "vpn", "wireguard", "up", "down", f"client log: {EVIL}", 1.5),
        TunnelResult("c2", "vpn", "openvpn", "up", "error", "[red]not red[/red] [link=x]", 0.1),
        TunnelResult("c3", "vpn", "pptp", "down", "skipped", "needs [nf_conntrack_pptp]", 0.0),
    ]
    return RunResult("t", "docker", "engine said [/] [b]", "6.1 [x]", tunnels)


def rendered(result: RunResult) -> str:
    console = Console(record=True, width=300, color_system=None)
    print_result(result, console)
    return console.export_text()


def test_reasons_with_markup_and_escape_codes_print_literally() -> None:
    text = rendered(evil_result())
    assert "client log: [/x] [bold]evil[/bold] \\x1b[31m red" in text
    assert "[red]not red[/red] [link=x]" in text
    assert "needs [nf_conntrack_pptp]" in text
    assert "engine said [/] [b]" in text and "kernel 6.1 [x]" in text
    assert "\x1b" not in text  # an escape sequence from a daemon's log never reaches the terminal


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vpnlab check` returning the evil result, without an engine."""
    monkeypatch.setattr(cli, "session", lambda: None)
    monkeypatch.setattr(orchestrate, "check", lambda _session, _name, _where: evil_result())


def test_check_writes_the_json_and_prints_a_path_with_brackets(checked: None, tmp_path: Path) -> None:
    out = tmp_path / "[bold]odd[/x] dir" / "result.json"
    out.parent.mkdir(parents=True)
    result = CliRunner().invoke(cli.main, ["check", "t", "--json", str(out)])
    assert result.exit_code == 1, result.output
    assert json.loads(out.read_text())["tunnels"][0]["reason"] == f"client log: {EVIL}"  # the JSON keeps it raw
    assert f"wrote {out}" in result.output
    assert "[bold]evil[/bold]" in result.output


def test_validate_prints_a_path_with_brackets(tmp_path: Path) -> None:
    source = resources.topology("home-office")
    odd = tmp_path / "[bold]odd[" / "x] dir"  # the path reads "[bold]odd[/x] dir"
    odd.mkdir(parents=True)
    topology = odd / "home-office.yml"
    topology.write_text(source.read_text())
    result = CliRunner().invoke(cli.main, ["validate", str(topology)])
    assert result.exit_code == 0, result.output
    assert f"{topology}: ok" in result.output


def test_progress_lines_print_names_literally() -> None:
    console = Console(record=True, width=200, color_system=None)
    orchestrate.Session(host=None, console=console).say("booting guest ([/x] [bold]slot)")  # type: ignore[arg-type]
    assert "booting guest ([/x] [bold]slot)" in console.export_text()


def test_check_takes_the_lab_as_name_or_lab_or_the_one_running(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.runtime import registry

    asked: list[str] = []
    monkeypatch.setattr(cli, "session", lambda: None)
    monkeypatch.setattr(cli, "host_engine", lambda: None)
    monkeypatch.setattr(orchestrate, "check", lambda _session, name, _where: asked.append(name) or evil_result())

    class Only:
        name = "the-one"

    monkeypatch.setattr(registry, "find_named_or_only_lab", lambda _host, name, _where: (None, Only()))
    for args in (["check", "t"], ["check", "--lab", "t"], ["check", "t", "--lab", "t"], ["check"]):
        assert CliRunner().invoke(cli.main, args).exit_code == 1  # the evil result: tunnels not as expected
    assert asked == ["t", "t", "t", "the-one"]
    both = CliRunner().invoke(cli.main, ["check", "t", "--lab", "u"])
    assert both.exit_code == 2 and "two labs named: 't' and --lab 'u'" in both.output
