"""The ``router:`` step without Docker: the partial section's merge, its validation with the
topology's Router model, the rules it renders, the shell that applies them and the runner."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lab import cli
from lab.errors import VpnlabError
from lab.plan import plan_lab
from lab.protocols.base import Environment
from lab.router.rules import plan_router, render_ruleset
from lab.runtime.lab import ExecResult
from lab.steps.results import StepResult, step_line
from lab.steps.router_change import RULES_COMMAND, apply_command, conntrack_count, merged_router, router_changes
from lab.steps.runner import StepRunner
from lab.topology import load_topology, parse_topology
from lab.topology.model import Router, Topology

REPO = Path(__file__).resolve().parent.parent.parent
SWITCH_FLIP = REPO / "topologies" / "scenario-switch-flip.yml"
HEAD = (
    "name: t\nrouter: {helpers: [pptp], passthrough: {l2tp: false}, block: [gre], conntrack: {udp_timeout: 30}}\n"
    "servers:\n  - {name: vpn, protocols: [openvpn-udp]}\nclients:\n  - {name: alice}\n"
    "tunnels:\n  - {client: alice, server: vpn, protocol: openvpn-udp}\nsteps:\n"
)


def with_steps(steps: str) -> Topology:
    return parse_topology(HEAD + steps, "t.yml")


def problems(steps: str) -> list[str]:
    with pytest.raises(VpnlabError) as caught:
        with_steps(steps)
    return [line.strip() for line in str(caught.value).splitlines()[1:] if line.strip().startswith("steps[")]


# --- merge -------------------------------------------------------------------


def test_a_partial_section_merges_mappings_key_by_key_and_replaces_lists() -> None:
    lab = with_steps("  - wait: 1\n").router
    after = merged_router(lab, {"passthrough": {"pptp": False}, "block": ["udp/1194"]})
    assert after.passthrough == {"pptp": False, "l2tp": False, "ipsec": True}  # l2tp kept off, pptp switched
    assert [r.label for r in after.block] == ["udp/1194"]  # gre replaced, not kept
    assert (after.helpers, after.nat, after.conntrack, after.allow_out) == (lab.helpers, lab.nat, lab.conntrack, None)
    assert merged_router(after, {"block": []}).block == []
    assert merged_router(lab, {}) == lab


def test_allow_out_set_and_cleared_by_a_step() -> None:
    lab = with_steps("  - wait: 1\n").router
    strict = merged_router(lab, {"allow_out": ["tcp/443", "udp/53"]})
    assert [r.label for r in strict.allow_out or []] == ["tcp/443", "udp/53"]
    assert merged_router(strict, {"allow_out": None}).allow_out is None


def test_the_step_says_what_changed() -> None:
    lab = with_steps("  - wait: 1\n").router
    after = merged_router(lab, {"passthrough": {"pptp": False, "l2tp": True}, "block": ["udp/1194"], "helpers": ["ftp"]})
    assert router_changes(lab, after) == [
        "helper ftp added", "helper pptp removed", "passthrough pptp off", "passthrough l2tp on",
        "block udp/1194 added", "block gre removed"]
    assert router_changes(lab, lab) == []
    strict = merged_router(lab, {"allow_out": ["tcp/443"]})
    assert router_changes(lab, strict) == ["allow_out set: only tcp/443 may go out"]
    assert router_changes(strict, merged_router(strict, {"allow_out": ["udp/53"]})) == [
        "allow_out udp/53 added", "allow_out tcp/443 removed"]
    assert router_changes(strict, lab) == ["allow_out removed: everything may go out"]


# --- validation --------------------------------------------------------------


def test_a_router_step_loads_as_written() -> None:
    topology = load_topology(SWITCH_FLIP)
    assert [s.kind for s in topology.steps] == ["check", "router", "check", "router", "check"]
    assert topology.steps[1].router == {"block": ["udp/1194"]} and topology.steps[3].router == {"block": []}
    assert "udp/1194" not in topology.model_dump_json()  # steps are not stored with the lab


def test_the_partial_section_is_checked_by_the_router_model_with_its_place() -> None:
    found = problems(
        "  - wait: 1\n"
        "  - router: {passthrough: {pptp: nope, pptpx: false}, block: [udp/70000], helpers: [pptpp, sip]}\n"
        "  - router: {nat: none, conntrack: {udp_timeout: 5}, profile: open, blocks: []}\n"
        "  - router: {}\n"
        "  - router: {block: udp/1194}\n"
        "  - router: {allow_out: [tcp/443, tcp/99999]}\n"
    )
    assert found == [
        "steps[1].router.passthrough.pptp: Input should be a valid boolean, unable to interpret input",
        "steps[1].router.passthrough.pptpx: unknown passthrough family 'pptpx' (known: pptp, l2tp, ipsec)",
        "steps[1].router.block[0]: 'udp/70000': ports must be 1-65535 and LOW <= HIGH",
        "steps[1].router.helpers[0]: unknown helper 'pptpp' (known: pptp, ftp, tftp, sip, irc, h323, amanda, netbios-ns, snmp, sane)",
        "steps[2].router.blocks: a router step changes only helpers, helpers_for, passthrough, block, allow_out",
        "steps[2].router.conntrack: conntrack timeouts are the router's sysctls, set when it is created and not writable "
        "from inside it; a router step cannot change them",
        "steps[2].router.nat: the NAT mode is fixed when the lab is built (the servers' routes back to the LAN depend on it); "
        "a router step cannot change it",
        "steps[2].router.profile: a profile is read when the lab is built; a router step names the keys it changes "
        "(helpers, helpers_for, passthrough, block, allow_out)",
        "steps[3].router: Dictionary should have at least 1 item after validation, not 0",
        "steps[4].router.block: Input should be a valid list",
        "steps[5].router.allow_out[1]: 'tcp/99999': ports must be 1-65535 and LOW <= HIGH",
    ]


def test_validate_exits_2_on_a_bad_router_step(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(HEAD + "  - router: {passthrough: {pptp: nope}}\n")
    result = CliRunner().invoke(cli.main, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "steps[0].router.passthrough.pptp: Input should be a valid boolean" in result.output
    assert "Traceback" not in result.output


# --- rendering and applying ---------------------------------------------------


def forward_rules(topology: Topology, router: Router) -> list[str]:
    plan = plan_lab(topology, Environment())
    ruleset = render_ruleset(plan_router(topology.model_copy(update={"router": router}), plan.addresses))
    return [line for line in ruleset.splitlines() if line.startswith("-A FORWARD")]


def test_the_merged_section_renders_its_drops_before_the_established_accept() -> None:
    topology = with_steps("  - wait: 1\n")
    before = forward_rules(topology, topology.router)
    after = forward_rules(topology, merged_router(topology.router, {"block": ["udp/1194"], "passthrough": {"pptp": False}}))
    established = next(i for i, rule in enumerate(after) if "ESTABLISHED" in rule)
    drops = [i for i, rule in enumerate(after) if "-j DROP" in rule and "default drop" not in rule]
    assert any("-p udp --dport 1194" in after[i] and '"vpnlab: block udp/1194"' in after[i] for i in drops)
    assert any('"vpnlab: passthrough pptp off (tcp/1723)"' in after[i] for i in drops)
    assert all(i < established for i in drops)  # an established flow meets the drops first
    # only the drops changed: the accepts and the default drop are the lab's own
    assert [r for r in after if "-j DROP" not in r] == [r for r in before if "-j DROP" not in r]
    assert not any("block gre" in rule for rule in after)
    assert forward_rules(topology, merged_router(topology.router, {})) == before


def test_apply_command_loads_the_ruleset_through_base64() -> None:
    ruleset = "*filter\n-A FORWARD -m comment --comment \"vpnlab: it's $(x)\" -j DROP\nCOMMIT\n"
    command = apply_command(ruleset, 3)
    assert "$(x)" not in command and "it's" not in command
    encoded = re.search(r"printf %s '([A-Za-z0-9+/=]+)'", command)
    assert encoded is not None and base64.b64decode(encoded.group(1)).decode() == ruleset
    assert command.endswith("iptables-restore < /run/vpnlab/rules.step3.v4")
    assert "conntrack -F" not in command and "-F" not in command.split("iptables-restore")[1]


def test_conntrack_count() -> None:
    assert conntrack_count("3\n") == 3
    assert conntrack_count("conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n0\n") == 0
    assert conntrack_count("conntrack: command not found") is None


# --- the runner and the line ---------------------------------------------------


class RouterLab:
    """A router whose conntrack count and restore exit are scripted; records every command."""

    def __init__(self, restore_exit: int = 0):
        self.restore_exit = restore_exit
        self.calls: list[tuple[str, str]] = []

    def exec(self, node: str, command: str, *, container: object = None, timeout: float | None = None) -> ExecResult:
        self.calls.append((node, command))
        if command == "conntrack -C":
            return ExecResult(node, command, 0, "4\n")
        if command == RULES_COMMAND:
            return ExecResult(node, command, 0, "-P FORWARD DROP\n-A FORWARD -c 7 420 -j ACCEPT\n")
        if "iptables-restore" in command:
            return ExecResult(node, command, self.restore_exit, "" if self.restore_exit == 0 else "iptables-restore: line 9 failed\n")
        return ExecResult(node, command, 0, "")


class Kernel:
    def skips(self, topology: object) -> dict[int, str]:
        return {}

    def notes(self, topology: object) -> dict[str, str]:
        return {}


def restored(command: str) -> str:
    encoded = re.search(r"printf %s '([A-Za-z0-9+/=]+)'", command)
    assert encoded is not None
    return base64.b64decode(encoded.group(1)).decode()


def test_router_steps_apply_in_turn_without_a_flush() -> None:
    topology = with_steps("  - router: {block: [udp/1194], passthrough: {pptp: false}}\n  - router: {block: []}\n")
    lab = RouterLab()
    runner = StepRunner(lab, plan_lab(topology, Environment()), Kernel())  # type: ignore[arg-type]
    first, second = runner.run()
    assert first.passed and second.passed
    assert first.detail["changed"] == "passthrough pptp off; block udp/1194 added; block gre removed"
    assert second.detail["changed"] == "block udp/1194 removed"  # merged over the first step's section
    assert first.detail["evidence"]["conntrack_before"] == first.detail["evidence"]["conntrack_after"] == 4
    assert first.detail["evidence"]["rules_after"] == ["-P FORWARD DROP", "-A FORWARD -c 7 420 -j ACCEPT"]
    restores = [c for n, c in lab.calls if n == "router" and "iptables-restore" in c]
    assert len(restores) == 2
    assert "vpnlab: block udp/1194" in restored(restores[0]) and "vpnlab: block udp/1194" not in restored(restores[1])
    assert "passthrough pptp off" in restored(restores[1])  # the second keeps what the first switched
    assert not any("conntrack -F" in c or "conntrack -D" in c for _, c in lab.calls)
    assert runner.router_section.passthrough["pptp"] is False and runner.router_section.block == []


def test_a_refused_ruleset_fails_the_step_and_leaves_the_section() -> None:
    topology = with_steps("  - router: {block: [udp/1194]}\n")
    runner = StepRunner(RouterLab(restore_exit=2), plan_lab(topology, Environment()), Kernel())  # type: ignore[arg-type]
    [step] = runner.run()
    assert not step.passed and step.detail["exit_code"] == 2
    assert [r.label for r in runner.router_section.block] == ["gre"]
    assert "block udp/1194 added; block gre removed; [red]not applied: iptables-restore exit 2: iptables-restore: line 9 failed[/red]" in step_line(step)


def test_one_line_for_a_router_step() -> None:
    step = StepResult(1, "router", 0.21, detail={
        "node": "router", "changed": "block udp/1194 added", "exit_code": 0, "output": [],
        "evidence": {"conntrack_before": 3, "conntrack_after": 3, "rules_before": [], "rules_after": []}})
    assert step_line(step) == ("[green]✓[/green] steps[1] router: block udp/1194 added; rules applied, "
                               "router conntrack 3 → 3 entries (0.21 s)")
    data = step.to_dict()
    assert data["kind"] == "router" and data["changed"] == "block udp/1194 added" and data["passed"] is True
    assert data["evidence"]["conntrack_after"] == 3


def test_a_reprobe_names_the_drop_rule_that_caught_the_tunnels_flow() -> None:
    from lab.check.results import TunnelResult

    class BlockedLab:
        def exec(self, node: str, command: str, *, container: object = None, timeout: float | None = None) -> ExecResult:
            if node == "alice":
                return ExecResult(node, command, 1, "vpnlab-result down 5000 ping 10.8.0.1 through tun0 had no answer within 5 s")
            if node == "router" and "==== counters" in command:
                return ExecResult(node, command, 0, (
                    "==== conntrack\nudp      17 170 src=192.168.100.10 dst=203.0.113.10 sport=41000 dport=1194 "
                    "src=203.0.113.10 dst=203.0.113.2 sport=1194 dport=41000 [ASSURED] mark=0 use=1\n"
                    "==== counters\nchain FORWARD\nChain FORWARD (policy DROP 0 packets, 0 bytes)\n"
                    "    pkts      bytes target     prot opt in     out     source               destination\n"
                    "       6      504 DROP       17   --  *      *       0.0.0.0/0            0.0.0.0/0"
                    "            udp dpt:1194 /* vpnlab: block udp/1194 */\n"
                    "       0        0 DROP       17   --  *      *       0.0.0.0/0            0.0.0.0/0"
                    "            udp dpt:51820 /* vpnlab: block udp/51820 */\n"))
            return ExecResult(node, command, 0, "")

    topology = load_topology(SWITCH_FLIP)
    runner = StepRunner(BlockedLab(), plan_lab(topology, Environment()), Kernel())  # type: ignore[arg-type]
    runner.already_started({0: TunnelResult("alice", "vpn", "openvpn-udp", "up", "up", "ok", 0.3, {})})
    verdict = runner.verdict("alice/openvpn-udp", 0, "down", "client")
    assert verdict.observed == "down" and verdict.passed
    assert verdict.evidence["router_drops"] == ["FORWARD: 'vpnlab: block udp/1194' dropped 6 packets"]
    assert len(verdict.evidence["router_conntrack"]) == 1
    assert verdict.reason.endswith("router rule 'vpnlab: block udp/1194' (FORWARD) has dropped 6 packets since the rules were loaded")
