"""What a scenario's steps showed: one StepResult per step, in the run's JSON and one line each on the terminal."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lab.display import shown

OUTPUT_LINES = 20  # an exec or flush keeps its output's last lines


@dataclass
class Verdict:
    """One tunnel's verdict in a check step."""

    tunnel: str  # as the step names it: client/protocol or client/server/protocol
    client: str
    server: str
    protocol: str
    direction: str  # who sent the probe: client or server
    expected: str
    observed: str  # up, down, skipped or error
    reason: str
    seconds: float
    # router_conntrack: the router's conntrack entries for the tunnel's flows at the verdict
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.observed == self.expected

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class StepResult:
    index: int  # the step's place in the topology's steps (steps[INDEX] in errors)
    kind: str  # check, wait, flush, exec, router or capture
    seconds: float
    verdicts: list[Verdict] = field(default_factory=list)  # a check's, in the order it names them
    # wait: seconds; flush, exec: node, exit code, output; router: those, what changed and the
    # evidence (the router's rules before and after, its conntrack entry count before and after);
    # capture: node, interface, the pcap's host path, tcpdump's packet count, evidence (the
    # capture's facts, and each checked tunnel's whose packets cross the interface)
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the step could not be done (an engine error, a command past its time)
    during: list[StepResult] = field(default_factory=list)  # a capture's steps, its index theirs in ``during``

    @property
    def passed(self) -> bool:
        if self.error is not None:
            return False
        if self.kind in ("flush", "exec", "router", "upstream"):
            return self.detail.get("exit_code") == 0
        if self.kind == "capture":
            return all(s.passed for s in self.during)
        return all(v.passed for v in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        verdicts = {"verdicts": [v.to_dict() for v in self.verdicts]} if self.kind == "check" else {}
        during = {"during": [s.to_dict() for s in self.during]} if self.kind == "capture" else {}
        error = {"error": self.error} if self.error is not None else {}
        return {"index": self.index, "kind": self.kind, **self.detail, **verdicts, **during, **error,
                "seconds": self.seconds, "passed": self.passed}


def output_tail(text: str) -> list[str]:
    return text.rstrip().splitlines()[-OUTPUT_LINES:]


def step_line(step: StepResult, where: str = "steps") -> str:
    """One line of Rich markup: the step, pass or fail, what it found (``where``: the list it is
    in). A capture's: its line, its steps' lines indented, then what the capture shows."""
    mark = "[green]✓[/green]" if step.passed else "[red]✗[/red]"
    head = f"{mark} {where}[{step.index}] {step.kind}"
    if step.kind == "capture":
        return _capture_lines(step, head, f"{where}[{step.index}].capture.during")
    if step.error is not None:
        return f"{head}: [red]{shown(step.error)}[/red] ({step.seconds:.2f} s)"
    if step.kind == "check":
        direction = step.verdicts[0].direction if step.verdicts else "client"
        said = "; ".join(_verdict_words(v) for v in step.verdicts)
        return f"{head} from {direction}: {said} ({step.seconds:.2f} s)"
    if step.kind == "wait":
        return f"{head} {step.detail['wait']:g} s ({step.seconds:.2f} s)"
    if step.kind in ("router", "upstream"):
        return f"{head}: {shown(step.detail['changed'])}; {_applied(step)} ({step.seconds:.2f} s)"
    where = f"on {shown(step.detail['node'])}"
    what = "conntrack" if step.kind == "flush" else "command"
    last = step.detail["output"][-1] if step.detail.get("output") else ""
    tail = f": {shown(last)}" if last else ""
    return f"{head} {what} {where}, exit {step.detail['exit_code']}{tail} ({step.seconds:.2f} s)"


def _capture_lines(step: StepResult, head: str, inner: str) -> str:
    detail = step.detail
    packets = "" if detail.get("packets") is None else f"{detail['packets']} packet(s), "
    where = f"{shown(detail.get('node', '?'))} {shown(detail.get('interface') or 'default')}"
    saved = f"{packets}{shown(detail['pcap'])}" if detail.get("pcap") else "no pcap"
    failed = f": [red]{shown(step.error)}[/red]" if step.error is not None else ""
    lines = [f"{head} {where} ({saved}){failed} ({step.seconds:.2f} s)"]
    lines += ["  " + line for s in step.during for line in step_line(s, inner).splitlines()]
    evidence = detail.get("evidence", {})
    tunnels = evidence.get("tunnels") or {}
    shows = tunnels or ({"the capture": evidence["facts"]} if evidence.get("facts") else {})
    for name, facts in shows.items():  # one fact a line, as vpnlab capture prints them
        lines += [f"  {shown(name)} in the capture:" if tunnels else "  the capture:", *(f"    {shown(f)}" for f in facts)]
    return "\n".join(lines)


def _applied(step: StepResult) -> str:
    """Whether the router took the rules, and its conntrack entry count across the change."""
    if step.detail["exit_code"] != 0:
        last = step.detail["output"][-1] if step.detail.get("output") else ""
        return f"[red]not applied: iptables-restore exit {step.detail['exit_code']}{f': {shown(last)}' if last else ''}[/red]"
    evidence = step.detail["evidence"]
    return f"rules applied, {step.detail['node']} conntrack {evidence['conntrack_before']} → {evidence['conntrack_after']} entries"


def _verdict_words(v: Verdict) -> str:
    colour = "green" if v.passed else "red"
    entries = v.evidence.get("router_conntrack")
    conntrack = "" if entries is None else f", router conntrack: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    return (f"{shown(v.tunnel)} [{colour}]{shown(v.observed)}[/{colour}] (expected {shown(v.expected)}, "
            f"{v.seconds:.2f} s{conntrack})")
