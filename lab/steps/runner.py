"""Running a topology's steps on a lab that is up, in order.

A check starts the tunnels it names that were not started yet (the up-check, as without
steps) and re-probes those already started, in the step's direction, without restarting
them; each verdict carries the router's conntrack entries for the tunnel's flows at that
moment. A wait sends nothing. A flush empties the router's conntrack table. An exec runs
the user's command with ``sh -c`` in its node. A router step (an upstream step: the same for
a double NAT's upstream router) re-renders the router's rules
from its section changed by the step (lab.steps.router_change) and loads them; later router
steps change the section as the earlier ones left it. A capture runs tcpdump on a node's
interface around its own steps (lab.steps.capture_step), writes the pcap into ``captures``
on the host and keeps its facts as evidence, per tunnel for the tunnels its checks named.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lab.check.evidence import RuleHit, conntrack_lines, drops_for, flow_entries, router_evidence_command, rule_hits
from lab.check.explain import parse_result
from lab.check.results import TunnelResult
from lab.check.run import EVIDENCE_SECONDS, check_tunnel, errored, named
from lab.check.scripts import parse_sections
from lab.check.upstream import upstream_evidence
from lab.pcap_facts import gre_call_ids_from, known_flows, pcap_facts, tunnel_facts
from lab.protocols import PROTOCOLS
from lab.protocols.base import TunnelContext
from lab.protocols.ports import flows_of, moved_flows
from lab.router.rules import RouterPlan, plan_router, plan_upstream, render_ruleset
from lab.runtime.lab import DockerLab, parallel
from lab.steps.capture_step import Listening, call_id_fact, capture_bound, on_path, pcap_path, role_of, start_capture
from lab.steps.model import Step, named_tunnels, tunnel_index
from lab.steps.probe import client_address_command, client_probe, probe_seconds, server_probe, tunnel_address
from lab.steps.results import StepResult, Verdict, output_tail
from lab.steps.router_change import COUNT_COMMAND, RULES_COMMAND, apply_command, conntrack_count, merged_router, router_changes

if TYPE_CHECKING:  # pragma: no cover
    from lab.capabilities import Capabilities
    from lab.plan import LabPlan
    from lab.topology.model import Router

PROBE_ALLOWANCE = 30.0  # beyond a probe's deadline before its exec is an error (a starved guest)
EXEC_SECONDS = 300.0  # an exec step's command, at most


class StepRunner:
    """Runs the steps of ``plan``'s topology on ``lab``; remembers which tunnels were started."""

    def __init__(self, lab: DockerLab, plan: LabPlan, capabilities: Capabilities, concurrency: int = 8,
                 say: Callable[[str], None] = lambda _: None, captures: Path | None = None):
        self.lab = lab
        self.captures = captures or Path(".")  # where capture steps write their pcaps
        self.plan = plan
        self.skips = capabilities.skips(plan.topology)
        self.notes = capabilities.notes(plan.topology)
        self.concurrency = concurrency
        self.say = say
        self.started: dict[int, TunnelResult] = {}  # tunnel index -> the up-check that started it
        self.router_section = plan.topology.router  # as the last router step left it
        self.upstream_section = plan.topology.upstream  # as the last upstream step left it (double NAT)

    @property
    def tunnels(self) -> list:
        return self.plan.topology.tunnels

    def unnamed_tunnels(self) -> list[int]:
        """Tunnels no check step names: they are checked before the steps, as without steps."""
        named = set(named_tunnels(self.plan.topology.steps, self.tunnels))
        return [i for i in range(len(self.tunnels)) if i not in named]

    def already_started(self, results: dict[int, TunnelResult]) -> None:
        self.started.update(results)

    def tunnel_results(self) -> list[TunnelResult]:
        """Each tunnel's first up-check (the topology's own expectation is judged on it)."""
        return [self.started.get(i) or self._never_started(i) for i in range(len(self.tunnels))]

    def _never_started(self, i: int) -> TunnelResult:
        t = self.tunnels[i]
        return TunnelResult(t.client, t.server, t.protocol, t.expect, "error",
                            "never started: the step naming it failed before it", 0.0, {})

    def run(self) -> list[StepResult]:
        return [self.step(i, step) for i, step in enumerate(self.plan.topology.steps)]

    def step(self, index: int, step: Step, where: str = "steps") -> StepResult:
        self.say(f"{where}[{index}] {step.kind}")
        started = time.monotonic()
        try:
            kinds = {"check": self._check, "wait": self._wait, "flush": self._flush, "exec": self._exec,
                     "router": self._router, "upstream": self._upstream}
            result = self._capture(index, step, where) if step.capture else kinds[step.kind](index, step)
        except Exception as exc:  # noqa: BLE001 - this step failed; the next ones still run
            result = StepResult(index, step.kind, 0.0, error=f"the step failed: {named(exc)}")
        result.seconds = round(time.monotonic() - started, 2)
        return result

    # --- the kinds -----------------------------------------------------------

    def _wait(self, index: int, step: Step) -> StepResult:
        time.sleep(step.wait or 0)
        return StepResult(index, "wait", 0.0, detail={"wait": step.wait})

    def _flush(self, index: int, step: Step) -> StepResult:
        router = self.plan.router.name
        run = self.lab.exec(router, "conntrack -F", timeout=EVIDENCE_SECONDS)
        return StepResult(index, "flush", 0.0, detail={"flush": step.flush, "node": router, "exit_code": run.exit_code,
                                                        "output": output_tail(run.output)})

    def _exec(self, index: int, step: Step) -> StepResult:
        spec = step.exec
        assert spec is not None
        run = self.lab.exec(spec.node, spec.run, timeout=EXEC_SECONDS)  # a string: run by sh -c
        return StepResult(index, "exec", 0.0, detail={"node": spec.node, "exit_code": run.exit_code,
                                                       "output": output_tail(run.output)})

    def _router(self, index: int, step: Step) -> StepResult:
        assert step.router is not None
        before, after = self.router_section, merged_router(self.router_section, step.router)
        result = self._apply(index, "router", before, after,
                             plan_router(self.plan.topology.model_copy(update={"router": after}), self.plan.addresses))
        if result.detail["exit_code"] == 0:  # the router runs the new rules: what follows is judged against them
            self.router_section = after
        return result

    def _upstream(self, index: int, step: Step) -> StepResult:
        """A router step for the upstream router of a double NAT (its own section, its own node)."""
        assert step.upstream is not None and self.upstream_section is not None
        before, after = self.upstream_section, merged_router(self.upstream_section, step.upstream)
        planned = plan_upstream(self.plan.topology.model_copy(update={"upstream": after}), self.plan.addresses)
        assert planned is not None
        result = self._apply(index, "upstream", before, after, planned)
        if result.detail["exit_code"] == 0:
            self.upstream_section = after
        return result

    def _apply(self, index: int, kind: str, before: Router, after: Router, planned: RouterPlan) -> StepResult:
        """Load ``planned``'s rules on its router node; the step's result with the evidence."""
        router = planned.name
        changed = "; ".join(router_changes(before, after)) or "no change"
        ruleset = render_ruleset(planned)
        rules_before = self.lab.exec(router, RULES_COMMAND, timeout=EVIDENCE_SECONDS).output
        count_before = conntrack_count(self.lab.exec(router, COUNT_COMMAND, timeout=EVIDENCE_SECONDS).output)
        run = self.lab.exec(router, apply_command(ruleset, index), timeout=EVIDENCE_SECONDS)
        evidence = {
            "rules_before": rules_before.rstrip().splitlines(),
            "rules_after": self.lab.exec(router, RULES_COMMAND, timeout=EVIDENCE_SECONDS).output.rstrip().splitlines(),
            "conntrack_before": count_before,
            "conntrack_after": conntrack_count(self.lab.exec(router, COUNT_COMMAND, timeout=EVIDENCE_SECONDS).output),
        }
        return StepResult(index, kind, 0.0, detail={"node": router, "changed": changed, "exit_code": run.exit_code,
                                                     "output": output_tail(run.output), "evidence": evidence})

    def _capture(self, index: int, step: Step, where: str) -> StepResult:
        spec = step.capture
        assert spec is not None
        try:
            listening = start_capture(self.lab, spec.node, spec.interface, capture_bound(spec.during))
        except Exception as exc:  # noqa: BLE001 - no capture, and none of its steps run
            return StepResult(index, "capture", 0.0, detail={"node": spec.node, "interface": spec.interface},
                              error=f"the capture failed: {named(exc)}")
        detail = {"node": spec.node, "interface": listening.interface}
        during: list[StepResult] = []
        try:  # the steps' results are kept whatever the capture does next
            during = [self.step(j, inner, f"{where}[{index}].capture.during") for j, inner in enumerate(spec.during)]
        finally:  # tcpdump ends whatever happened (an interrupt too)
            stopped = stopped_capture(listening)
        try:
            if isinstance(stopped, Exception):
                raise stopped
            data, packets = stopped
            path = pcap_path(self.captures, self.lab.name, f"{where}[{index}]", spec.node, listening.interface)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            role = role_of(self.lab, spec.node)
            crossed = {v.tunnel: v.protocol for v in verdicts_in(during)
                       if on_path(spec.node, role, listening.interface, v.client, v.server)}
            tunnels = {name: self._capture_facts(data, name, protocol) for name, protocol in crossed.items()}
            evidence = {"facts": pcap_facts(data, known_flows(moved_flows(self.plan.topology))), "tunnels": tunnels}
        except Exception as exc:  # noqa: BLE001 - the capture failed; its steps' results stay
            return StepResult(index, "capture", 0.0, detail=detail, error=f"the capture failed: {named(exc)}", during=during)
        return StepResult(index, "capture", 0.0, during=during,
                          detail={**detail, "pcap": str(path), "packets": packets, "evidence": evidence})

    def _capture_facts(self, data: bytes, name: str, protocol: str) -> list[str]:
        """A capture's facts about one tunnel's own flows (its ports, moved or not, to or from its
        server) and what a capture of both sides of the router shows the NAT did to it (PPTP's call ID)."""
        ctx = self.plan.tunnels[tunnel_index(name, self.tunnels)]
        facts = tunnel_facts(data, [protocol], {protocol: flows_of(ctx.tunnel)}, peer=str(ctx.server_wan))[protocol]
        if protocol != "pptp":
            return facts
        fact = call_id_fact(gre_call_ids_from(data, str(ctx.server_wan)), str(self.plan.addresses.router_wan), str(ctx.client_lan))
        return facts + ([fact] if fact else [])

    def _check(self, index: int, step: Step) -> StepResult:
        spec = step.check
        assert spec is not None
        asked = [(name, tunnel_index(name, self.tunnels), expected) for name, expected in spec.expect.items()]
        verdicts = parallel(lambda a: self.verdict(*a, spec.direction, spec.size), asked, limit=self.concurrency)
        return StepResult(index, "check", 0.0, verdicts=verdicts)

    # --- one tunnel ---------------------------------------------------------

    def verdict(self, name: str, i: int, expected: str, direction: str, size: int | None = None) -> Verdict:
        ctx = self.plan.tunnels[i]
        t = ctx.tunnel

        def said(observed: str, reason: str, seconds: float, entries: list[str] | None = None) -> Verdict:
            evidence = {"router_conntrack": entries} if entries is not None else {}
            return Verdict(name, t.client, t.server, t.protocol, direction, expected, observed, reason,
                           round(seconds, 2), evidence)

        if i in self.skips:  # this kernel cannot run it: the tunnel's row says so too
            self.started.setdefault(i, TunnelResult(t.client, t.server, t.protocol, t.expect, "skipped", self.skips[i], 0.0, {}))
            return said("skipped", self.skips[i], 0.0)
        started = time.monotonic()
        try:
            if i not in self.started:
                first = self._start(i, ctx)
                if direction == "client" and size is None:  # the up-check pinged from the client: its verdict is this one
                    verdict = said(first.observed, first.reason, first.seconds, first.evidence.get("router_conntrack", []))
                    verdict.evidence.update({k: v for k, v in first.evidence.items() if k.startswith("upstream_")})
                    return verdict
            observed, seconds, detail = self.probe(ctx, direction, size)
            entries, hits = self.router_state(ctx)
            beyond = upstream_evidence(self.lab, ctx, entries)  # a double NAT's upstream router (None: none)
        except Exception as exc:  # noqa: BLE001 - this tunnel's verdict only
            return said("error", f"the check failed: {named(exc)}", time.monotonic() - started)
        drops = [f"router rule '{h.comment}' ({h.chain}) has dropped {h.packets} packets since the rules were loaded"
                 for h in hits]
        upstream = beyond.facts(observed, ctx) if beyond else []
        verdict = said(observed, "; ".join([detail, conntrack_words(ctx, entries), *drops, *upstream]), seconds, entries)
        if hits:  # a drop rule of the tunnel's flows caught packets (a router step's block, say)
            verdict.evidence["router_drops"] = [f"{h.chain}: '{h.comment}' dropped {h.packets} packets" for h in hits]
        if beyond:
            verdict.evidence.update(beyond.to_evidence())
        return verdict

    def _start(self, i: int, ctx: TunnelContext) -> TunnelResult:
        started = time.monotonic()
        try:
            result = check_tunnel(self.lab, ctx, self.plan.router.name)
        except Exception as exc:  # noqa: BLE001 - kept as the tunnel's error verdict, then raised for the step's
            self.started[i] = errored(ctx, exc, time.monotonic() - started)
            raise
        note = self.notes.get(ctx.tunnel.protocol)
        if note:
            result.reason += f"; {note}"
        self.started[i] = result
        return result

    def probe(self, ctx: TunnelContext, direction: str, size: int | None = None) -> tuple[str, float, str]:
        """Ping through the tunnel, from the client or the server: (observed, seconds, detail)."""
        t = ctx.tunnel
        bound = probe_seconds(ctx) + PROBE_ALLOWANCE
        started = time.monotonic()
        if direction == "client":
            run = self.lab.exec(t.client, client_probe(ctx, size), timeout=bound)
        else:
            printed = self.lab.exec(t.client, client_address_command(ctx), timeout=EVIDENCE_SECONDS).output
            address = tunnel_address(ctx, printed)
            if address is None:
                subnet = PROTOCOLS[t.protocol].tunnel_subnet(ctx.plan, t.server)
                return "down", 0.0, f"the client holds no address of {subnet} on the tunnel: the server has none to probe"
            run = self.lab.exec(t.server, server_probe(ctx, address, size), timeout=bound)
        observed, millis, detail = parse_result(run.output, run.exit_code)
        return observed, millis / 1000 if millis is not None else time.monotonic() - started, detail

    def router_state(self, ctx: TunnelContext) -> tuple[list[str], list[RuleHit]]:
        """The router's conntrack entries for the tunnel's flows, and the hits of the drop rules
        that name them (counted since the router's rules were last loaded), now."""
        command = router_evidence_command(str(ctx.client_lan), str(ctx.server_wan))
        sections = parse_sections(self.lab.exec(self.plan.router.name, command, timeout=EVIDENCE_SECONDS).output)
        flows = flows_of(ctx.tunnel)
        return (flow_entries(conntrack_lines(sections.get("conntrack", "")), flows),
                drops_for(rule_hits(sections.get("counters", "")), flows))


def run_steps(lab: DockerLab, plan: LabPlan, capabilities: Capabilities, concurrency: int,
              checked: dict[int, TunnelResult], captures: Path | None = None) -> list[StepResult]:
    """The steps on a lab whose tunnels in ``checked`` (by index) were checked already: those are
    re-probed, not restarted; ``checked`` gains the tunnels the steps start; capture steps write
    their pcaps into ``captures`` (default: the current folder)."""
    runner = StepRunner(lab, plan, capabilities, concurrency, captures=captures)
    runner.already_started(checked)
    steps = runner.run()
    checked.update(runner.started)
    return steps


def verdicts_in(results: list[StepResult]) -> list[Verdict]:
    """The verdicts of these steps, a capture's inner steps' included, in the order given."""
    return [v for r in results for v in [*r.verdicts, *verdicts_in(r.during)]]


def stopped_capture(listening: Listening) -> tuple[bytes, int | None] | Exception:
    """The capture's bytes and packet count, or why there are none."""
    try:
        return listening.stop()
    except Exception as exc:  # noqa: BLE001 - the capture step's error
        return exc


def conntrack_words(ctx: TunnelContext, entries: list[str]) -> str:
    """What the router's conntrack holds for the tunnel, in words."""
    labels = ", ".join(f.label for f in flows_of(ctx.tunnel))
    between = f"{labels} from {ctx.client_lan} to {ctx.server_wan}"
    if not entries:
        return f"no router conntrack entry for {between}"
    unreplied = " (unreplied)" if all("[UNREPLIED]" in e for e in entries) else ""
    return f"router conntrack holds {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} for {between}{unreplied}"
