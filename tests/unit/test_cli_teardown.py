"""A teardown that cannot remove everything still goes to the end, keeps the run's result, and
says what is left in one error (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from lab import cli, orchestrate, resources
from lab.check.results import TunnelResult
from lab.errors import VpnlabError
from lab.runtime import registry
from lab.runtime.lab import TeardownError

STUCK = TeardownError(8, ["container vpnlab-home-office-router: device or resource busy"])


class Lab:
    def __init__(self, name: str, error: Exception | None = None, count: int = 9):
        self.name, self.error, self.count, self.downs = name, error, count, 0

    def down(self) -> int:
        self.downs += 1
        if self.error is not None:
            raise self.error
        return self.count


class FakeSession:
    """Opens a runtime that needs no engine; remembers whether it was closed."""

    def __init__(self) -> None:
        self.closed: bool | None = None
        self.runtime: object | None = None
        self.said: list[str] = []

    def open_runtime(self, _choice: str, _topology: object) -> SimpleNamespace:
        return SimpleNamespace(name="docker", reason="test", kernel="6.1", timings={})

    def close(self, keep_guest: bool = False) -> None:
        self.closed = keep_guest

    def say(self, text: str) -> None:
        self.said.append(text)


@pytest.fixture
def stuck_run(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeSession, Lab]:
    fake, lab = FakeSession(), Lab("home-office", STUCK)
    tunnel = TunnelResult("alice", "vpn", "wireguard", "up", "up", "ping answered", 1.0)
    monkeypatch.setattr(cli, "session", lambda: fake)
    monkeypatch.setattr(orchestrate, "plan_for", lambda _session, _topology: None)
    monkeypatch.setattr(orchestrate, "up", lambda *_args, **_kwargs: lab)
    monkeypatch.setattr(orchestrate, "check_and_probe", lambda *_args: ([tunnel], None))
    return fake, lab


def test_run_keeps_the_result_when_the_teardown_fails_and_exits_2(stuck_run, tmp_path: Path) -> None:
    fake, lab = stuck_run
    out = tmp_path / "result.json"
    result = CliRunner().invoke(cli.main, ["run", str(resources.topology("home-office")), "--json", str(out)])
    assert result.exit_code == 2, result.output
    written = json.loads(out.read_text())
    assert written["tunnels"][0]["observed"] == "up"
    assert "could not remove 1: container vpnlab-home-office-router: device or resource busy" in written["teardown"]
    assert lab.downs == 1 and fake.closed is False  # the guest was closed (stopped) all the same
    assert "1 as expected" in result.output and "Traceback" not in result.output


def test_run_closes_the_session_when_the_engine_is_gone_mid_teardown(stuck_run) -> None:
    fake, lab = stuck_run
    lab.error = ConnectionError("engine gone")
    result = orchestrate.run(fake, _topology(), source="t")  # type: ignore[arg-type]
    assert fake.closed is False
    assert result.teardown is not None and "ConnectionError: engine gone" in result.teardown


def test_an_engine_that_stopped_under_the_run_is_the_one_error(stuck_run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest killed under the lab: the engine calls that failed because of it (the up's, then the
    teardown's) give way to the runtime's own account, asked before the teardown closes it."""
    fake, lab = stuck_run
    stopped = VpnlabError("User-Mode Linux guest (slot0): the guest stopped under the lab")
    fake.runtime = SimpleNamespace(failure=lambda: stopped if fake.closed is None else None)

    def up_into_a_dead_engine(*_args: object, **_kwargs: object) -> Lab:
        raise ConnectionError("Connection aborted.")

    monkeypatch.setattr(orchestrate, "up", up_into_a_dead_engine)
    with pytest.raises(VpnlabError) as raised:
        orchestrate.run(fake, _topology(), source="t")  # type: ignore[arg-type]
    assert raised.value is stopped and raised.value.__suppress_context__
    assert fake.closed is False  # the guest was still closed (stopped) and its slot let go


def _topology():
    from lab.topology import load_topology

    return load_topology(resources.topology("home-office"))


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    seen: dict[str, object] = {"stopped": 0, "removed": []}
    clients = [Lab("first", STUCK), Lab("second")]

    def stop_idle(_host: object) -> int:
        seen["stopped"] = 1
        return 1

    monkeypatch.setattr(cli, "host_engine", lambda: None)
    monkeypatch.setattr(registry, "lab_engines", lambda _host, _where: [SimpleNamespace(client=c) for c in clients])
    monkeypatch.setattr(registry, "find_lab", lambda _host, name, _where: (None, clients[0]))
    monkeypatch.setattr(registry, "stop_idle_engines", stop_idle)
    monkeypatch.setattr("lab.runtime.lab.down_all", lambda client: client.down())
    seen["clients"] = clients
    return seen


def test_down_all_removes_from_every_engine_and_stops_the_guests_then_reports_what_is_left(engines) -> None:
    result = CliRunner().invoke(cli.main, ["down", "--all"])
    assert result.exit_code == 2, result.output
    assert [c.downs for c in engines["clients"]] == [1, 1]  # type: ignore[attr-defined]
    assert engines["stopped"] == 1
    assert "removed 17 object(s) but could not remove 1: container vpnlab-home-office-router" in result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output


def test_down_of_one_lab_still_stops_idle_guests(engines) -> None:
    result = CliRunner().invoke(cli.main, ["down", "first"])
    assert result.exit_code == 2 and engines["stopped"] == 1, result.output


def test_a_nat_probe_that_raises_keeps_the_tunnels_results(monkeypatch: pytest.MonkeyPatch) -> None:
    tunnel = TunnelResult("alice", "vpn", "wireguard", "up", "up", "ping answered", 1.0)

    def broken_probe(_lab: object, _plan: object) -> None:
        raise TimeoutError("stun server never answered")

    monkeypatch.setattr(orchestrate, "measure_nat", broken_probe)
    monkeypatch.setattr(orchestrate, "check_plan", lambda *_args: [tunnel])
    plan = SimpleNamespace(topology=SimpleNamespace(nat_probe=True))
    results, nat = orchestrate.check_and_probe(None, None, plan)  # type: ignore[arg-type]
    assert results == [tunnel]
    assert nat is not None and (nat.mapping, nat.filtering) == ("unknown", "unknown")
    assert nat.summary == "the probe failed: TimeoutError: stun server never answered"
