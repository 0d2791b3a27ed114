"""Scenario steps without Docker: names, probes' shell, the runner against a scripted lab, the JSON and the lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console

from lab.check.results import RunResult, TunnelResult
from lab.plan import plan_lab
from lab.protocols import PROTOCOLS
from lab.protocols.base import Environment
from lab.report import print_result
from lab.runtime.lab import ExecResult
from lab.steps import runner as runner_module
from lab.steps.model import named_tunnels, tunnel_index, tunnel_label
from lab.steps.probe import client_address_command, client_probe, server_probe, tunnel_address
from lab.steps.results import StepResult, Verdict, step_line
from lab.steps.runner import StepRunner
from lab.topology import load_topology, parse_topology

REPO = Path(__file__).resolve().parent.parent.parent
SCENARIO = REPO / "topologies" / "scenario-nat-timeout.yml"
CONNTRACK_LINE = (
    "udp      17 4 src=192.168.100.10 dst=203.0.113.10 sport=40000 dport=51820 src=203.0.113.10 "
    "dst=203.0.113.2 sport=51820 dport=40000 [ASSURED] mark=0 use=1"
)


def topology_with(steps: str, tunnels: str | None = None):
    tunnels = tunnels or (
        "  - {client: alice, server: vpn, protocol: wireguard}\n"
        "  - {client: bob, server: vpn, protocol: wireguard, options: {keepalive: 2}}\n"
    )
    return parse_topology(
        "name: t\nservers:\n  - {name: vpn, protocols: [wireguard, ikev2]}\n"
        f"clients:\n  - {{name: alice}}\n  - {{name: bob}}\ntunnels:\n{tunnels}steps:\n{steps}"
    )


# --- the model --------------------------------------------------------------


def test_scenario_loads_its_steps_in_order() -> None:
    topology = load_topology(SCENARIO)
    assert [s.kind for s in topology.steps] == ["check", "wait", "check", "check", "check"]
    assert topology.steps[2].check is not None and topology.steps[2].check.direction == "server"
    assert topology.steps[2].check.expect == {"silent/wireguard": "down", "chatty/wireguard": "up"}
    assert topology.steps[1].wait == 20


def test_steps_are_not_stored_with_the_lab() -> None:
    topology = topology_with("  - exec: {node: router, run: 'echo SECRET-COMMAND'}\n")
    assert topology.steps[0].exec is not None and topology.steps[0].exec.run == "echo SECRET-COMMAND"
    stored = topology.model_dump_json()
    assert "SECRET-COMMAND" not in stored and '"steps"' not in stored


def test_a_topology_without_steps_has_none() -> None:
    topology = load_topology(REPO / "topologies" / "home-office.yml")
    assert topology.steps == []


def test_tunnel_names_short_long_and_ambiguous() -> None:
    tunnels = topology_with(
        "  - wait: 1\n",
        "  - {client: alice, server: vpn, protocol: wireguard}\n  - {client: bob, server: vpn, protocol: wireguard}\n",
    ).tunnels
    assert tunnel_index("bob/wireguard", tunnels) == 1
    assert tunnel_index("alice/vpn/wireguard", tunnels) == 0
    assert tunnel_label(1, tunnels) == "bob/wireguard"
    with pytest.raises(ValueError, match="no tunnel 'carol/wireguard'"):
        tunnel_index("carol/wireguard", tunnels)
    with pytest.raises(ValueError, match="not a tunnel name"):
        tunnel_index("a/b/c/d", tunnels)


def test_named_tunnels_in_first_named_order() -> None:
    topology = topology_with(
        "  - check: {expect: {bob/wireguard: up}}\n  - check: {expect: {alice/wireguard: up, bob/wireguard: up}}\n"
    )
    assert named_tunnels(topology.steps, topology.tunnels) == [1, 0]


# --- the probes' shell ------------------------------------------------------


def test_client_probe_pings_the_servers_tunnel_address_through_the_interface() -> None:
    plan = plan_lab(load_topology(SCENARIO), Environment())
    script = client_probe(plan.tunnels[0])
    assert "ping -n -c 1 -W 1 -I wg0 10.100.0.1" in script
    assert "+ 1000 )) -le 5000" in script  # the probe's 5 s deadline, shorter than WireGuard's 10 s up-check


def test_server_probe_pings_the_client_from_the_servers_tunnel_address() -> None:
    plan = plan_lab(load_topology(SCENARIO), Environment())
    assert "ping -n -c 1 -W 1 -I 10.100.0.1 10.100.0.3 " in server_probe(plan.tunnels[1], "10.100.0.3")
    assert "dev wg0" in client_address_command(plan.tunnels[1])


def test_ikev2_probes_use_the_virtual_ip() -> None:
    topology = topology_with("  - wait: 1\n", "  - {client: alice, server: vpn, protocol: ikev2}\n")
    ctx = plan_lab(topology, Environment()).tunnels[0]
    assert '-I "$src" 10.106.0.1' in client_probe(ctx)
    assert client_address_command(ctx) == PROTOCOLS["ikev2"].ping_source(ctx)  # the virtual IP, read on the client


def test_only_an_address_of_the_servers_tunnel_subnet_is_probed() -> None:
    ctx = plan_lab(load_topology(SCENARIO), Environment()).tunnels[0]
    assert tunnel_address(ctx, "10.100.0.2\n") == "10.100.0.2"
    assert tunnel_address(ctx, "8.8.8.8") is None
    assert tunnel_address(ctx, "") is None
    assert tunnel_address(ctx, "10.100.0.2; reboot") is None
    assert tunnel_address(ctx, "10.100.0.2 10.100.0.3") is None


# --- the runner against a scripted lab --------------------------------------


@dataclass
class ScriptedLab:
    """Answers each exec by what it runs; records every (node, command)."""

    answers: list[tuple[str, str, str]]  # (node, pattern, output): the first matching answers
    calls: list[tuple[str, str]] = field(default_factory=list)

    def exec(self, node: str, command: str, *, container: object = None, timeout: float | None = None) -> ExecResult:
        self.calls.append((node, command))
        for where, pattern, output in self.answers:
            if where == node and re.search(pattern, command):
                return ExecResult(node, command, 0 if "vpnlab-result up" in output or "result" not in output else 1, output)
        return ExecResult(node, command, 0, "")

    def ran(self, node: str, pattern: str) -> int:
        return sum(1 for n, c in self.calls if n == node and re.search(pattern, c))


class Kernel:
    def skips(self, topology: object) -> dict[int, str]:
        return {}

    def notes(self, topology: object) -> dict[str, str]:
        return {}


def scenario_runner(answers: list[tuple[str, str, str]], monkeypatch: pytest.MonkeyPatch) -> tuple[StepRunner, ScriptedLab, list[float]]:
    slept: list[float] = []
    monkeypatch.setattr(runner_module.time, "sleep", slept.append)
    lab = ScriptedLab(answers)
    plan = plan_lab(load_topology(SCENARIO), Environment())
    return StepRunner(lab, plan, Kernel()), lab, slept  # type: ignore[arg-type]


def test_the_scenario_starts_once_then_probes_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [
        ("silent", r"check\.sh", "vpnlab-result up 420 ping 10.100.0.1 answered through wg0"),
        ("chatty", r"check\.sh", "vpnlab-result up 380 ping 10.100.0.1 answered through wg0"),
        ("silent", r"ip -4 -o address", "10.100.0.2"),
        ("vpn", r"10\.100\.0\.2 ", "vpnlab-result down 5003 ping 10.100.0.2 from the server's 10.100.0.1 had no answer within 5 s"),
        ("chatty", r"ip -4 -o address", "10.100.0.3"),
        ("vpn", r"10\.100\.0\.3 ", "vpnlab-result up 12 ping 10.100.0.3 from the server's 10.100.0.1 answered"),
        ("router", r"-s 192\.168\.100\.11 ", f"==== conntrack\n{CONNTRACK_LINE.replace('.10 dst=203', '.11 dst=203')}\n==== counters\n"),
        ("silent", r"-I wg0 10\.100\.0\.1", "vpnlab-result down 5000 ping 10.100.0.1 from the client through wg0 had no answer within 5 s"),
    ]
    runner, lab, slept = scenario_runner(answers, monkeypatch)
    steps = runner.run()

    assert [s.kind for s in steps] == ["check", "wait", "check", "check", "check"]
    assert slept == [20]
    first, _, from_server, from_client, _ = steps
    assert [(v.tunnel, v.observed, v.passed) for v in first.verdicts] == [
        ("silent/wireguard", "up", True), ("chatty/wireguard", "up", True)]
    assert [(v.tunnel, v.direction, v.observed) for v in from_server.verdicts] == [
        ("silent/wireguard", "server", "down"), ("chatty/wireguard", "server", "up")]
    silent, chatty = from_server.verdicts
    assert silent.passed and chatty.passed and from_server.passed
    assert silent.evidence == {"router_conntrack": []}
    assert "no router conntrack entry for udp/51820 from 192.168.100.10 to 203.0.113.10" in silent.reason
    assert len(chatty.evidence["router_conntrack"]) == 1 and "holds 1 entry" in chatty.reason
    assert silent.seconds == 5.0
    # the client probe found no answer here (scripted): that step fails, and only that one
    assert not from_client.passed and from_client.verdicts[0].observed == "down"
    # started once each, never restarted by the later checks
    assert lab.ran("silent", r"check\.sh") == 1 and lab.ran("chatty", r"check\.sh") == 1
    assert [t.observed for t in runner.tunnel_results()] == ["up", "up"]


def test_a_failing_exec_fails_its_step_and_the_next_steps_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(node: str, command: str, **_: object) -> ExecResult:
        raise RuntimeError("container gone")

    topology = topology_with(
        "  - exec: {node: bob, run: 'exit 3'}\n  - exec: {node: alice, run: 'boom'}\n  - flush: conntrack\n"
    )
    lab = ScriptedLab([("bob", r"^exit 3$", "nothing")])
    runner = StepRunner(lab, plan_lab(topology, Environment()), Kernel())  # type: ignore[arg-type]
    real_exec = lab.exec
    monkeypatch.setattr(lab, "exec", lambda node, command, **kw: explode(node, command) if command == "boom" else real_exec(node, command, **kw))
    exit_three, boom, flush = runner.run()
    assert ("bob", "exit 3") in lab.calls  # the user's command as written, run by sh -c in its node
    assert exit_three.detail["node"] == "bob" and exit_three.detail["output"] == ["nothing"]
    assert boom.error == "the step failed: RuntimeError: container gone" and not boom.passed
    assert ("router", "conntrack -F") in lab.calls and flush.passed


def test_a_tunnel_named_by_no_step_is_left_to_the_first_check(monkeypatch: pytest.MonkeyPatch) -> None:
    topology = topology_with("  - check: {expect: {bob/wireguard: up}, from: server}\n")
    runner = StepRunner(ScriptedLab([]), plan_lab(topology, Environment()), Kernel())  # type: ignore[arg-type]
    assert runner.unnamed_tunnels() == [0]


def test_a_tunnel_this_kernel_cannot_run_is_skipped_in_its_steps_and_its_row() -> None:
    class NoIkev2(Kernel):
        def skips(self, topology: object) -> dict[int, str]:
            return {0: "kernel 6.1 lacks xfrm"}

    topology = topology_with("  - check: {expect: {alice/ikev2: up}}\n", "  - {client: alice, server: vpn, protocol: ikev2}\n")
    lab = ScriptedLab([])
    runner = StepRunner(lab, plan_lab(topology, Environment()), NoIkev2())  # type: ignore[arg-type]
    [step] = runner.run()
    assert (step.verdicts[0].observed, step.verdicts[0].reason) == ("skipped", "kernel 6.1 lacks xfrm")
    assert [(t.observed, t.reason) for t in runner.tunnel_results()] == [("skipped", "kernel 6.1 lacks xfrm")]
    assert lab.calls == []  # nothing ran


# --- results ----------------------------------------------------------------


def verdict(observed: str, expected: str) -> Verdict:
    return Verdict("silent/wireguard", "silent", "vpn", "wireguard", "server", expected, observed, "why", 5.0,
                   {"router_conntrack": []})


def run_result(steps: list[StepResult] | None) -> RunResult:
    tunnel = TunnelResult("silent", "vpn", "wireguard", "up", "up", "ok", 0.4, {})
    return RunResult("t", "docker", "because", "6.1", [tunnel], steps=steps)


def test_json_has_steps_only_with_steps_and_a_failed_step_fails_the_run() -> None:
    assert "steps" not in run_result(None).to_dict()
    good = StepResult(2, "check", 5.1, verdicts=[verdict("down", "down")])
    bad = StepResult(3, "check", 5.1, verdicts=[verdict("down", "up")])
    data = run_result([good, StepResult(1, "wait", 12.0, detail={"wait": 12.0})]).to_dict()
    assert data["passed"] is True
    assert data["steps"][0]["verdicts"][0] == {
        "tunnel": "silent/wireguard", "client": "silent", "server": "vpn", "protocol": "wireguard",
        "direction": "server", "expected": "down", "observed": "down", "reason": "why", "seconds": 5.0,
        "evidence": {"router_conntrack": []}, "passed": True}
    assert data["steps"][1] == {"index": 1, "kind": "wait", "wait": 12.0, "seconds": 12.0, "passed": True}
    assert run_result([good, bad]).passed is False


def test_one_line_per_step_on_the_terminal() -> None:
    console = Console(record=True, width=200)
    steps = [StepResult(1, "wait", 12.0, detail={"wait": 12.0}),
             StepResult(2, "check", 5.1, verdicts=[verdict("down", "up")])]
    print_result(run_result(steps), console)
    text = console.export_text()
    assert "✓ steps[1] wait 12 s (12.00 s)" in text
    assert "✗ steps[2] check from server: silent/wireguard down (expected up, 5.00 s, router conntrack: 0 entries)" in text
    assert "steps: 1 as expected, 1 not" in text
    assert step_line(StepResult(0, "exec", 0.1, detail={"node": "[x]", "exit_code": 0, "output": []})).count("\\[x]") == 1
