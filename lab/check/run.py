"""Checking tunnels on a running lab: start, wait for the ping, gather evidence, explain.

One exec per tunnel runs its up-check (``scripts``), which prints the client's evidence after
its verdict; two more gather the router's and the server's (``evidence``), while the router's
drop counters may end the up-check early (``blocked``); the protocol reads the evidence and
``explain`` words the verdict; the result is a ``results.TunnelResult``.

Tunnels are checked in parallel; each verdict comes from its own deadline
(15 s at most for WireGuard and OpenVPN), and a tunnel that stays down gets
a reason built from the router's counters and conntrack and the client's logs.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import TYPE_CHECKING

from lab.capabilities import Capabilities
from lab.check.blocked import watched
from lab.check.evidence import (
    EVIDENCE_SECONDS,
    ConntrackEntry,
    Evidence,
    RouterEvidence,
    conntrack_lines,
    drops_for,
    flow_entries,
    router_evidence_command,
    rule_hits,
)
from lab.check.explain import DURING, SINCE_LOADED, explain, parse_result, return_route_facts
from lab.check.results import TunnelResult
from lab.check.scripts import deadline, parse_sections, sections_command, split_check_output, tunnel_dir
from lab.check.upstream import upstream_evidence
from lab.topology.model import UPSTREAM_NODE
from lab.protocols import PROTOCOLS
from lab.protocols.base import TunnelContext
from lab.protocols.ports import flows_of
from lab.router.comments import INPUT_DROPS
from lab.runtime.lab import DockerLab, parallel

if TYPE_CHECKING:  # pragma: no cover
    from lab.plan import LabPlan

# How long the host waits for a tunnel's execs. The up-check ends at its deadline (120 s at most)
# plus one ping's second, unless its start commands outlast the deadline: those get this much more
# on a starved one-CPU guest. Evidence is a few quick commands. Past these the tunnel is an error.
START_ALLOWANCE = 60.0


def check_seconds(tunnel_deadline: float) -> float:
    """Seconds the host waits for a tunnel's up-check exec whose deadline is ``tunnel_deadline``."""
    return tunnel_deadline + START_ALLOWANCE


def check_tunnels(
    lab: DockerLab,
    plan: LabPlan,
    capabilities: Capabilities,
    only: list[int] | None = None,
    concurrency: int = 8,
) -> list[TunnelResult]:
    """Check every tunnel of the plan (or those in ``only``); what the engine's kernel cannot
    run is skipped with the missing feature named, and recommended features it lacks are noted.

    At most ``concurrency`` tunnels start at once: each deadline runs from its own
    start, and a one-CPU User-Mode Linux guest starting eight tunnels' daemons
    together starves the slowest handshakes past their deadlines.
    """
    skip = capabilities.skips(plan.topology)
    notes = capabilities.notes(plan.topology)

    def one(index: int) -> TunnelResult:
        ctx = plan.tunnels[index]
        if index in skip:
            t = ctx.tunnel
            return TunnelResult(t.client, t.server, t.protocol, t.expect, "skipped", skip[index], 0.0, {})
        started = time.monotonic()
        try:
            result = check_tunnel(lab, ctx, plan.router.name)
        except Exception as exc:  # noqa: BLE001 - the engine failed this tunnel only: the others keep their verdicts
            return errored(ctx, exc, time.monotonic() - started)
        note = notes.get(ctx.tunnel.protocol)
        if note:
            result.reason += f"; {note}"
        return result

    return parallel(one, only if only is not None else range(len(plan.tunnels)), limit=concurrency)


def errored(ctx: TunnelContext, exc: Exception, seconds: float) -> TunnelResult:
    """The verdict of a tunnel whose check raised (an engine error, a container gone, an exec
    past its time): ``error``, with the exception named."""
    t = ctx.tunnel
    reason = f"the check failed: {named(exc)}"
    return TunnelResult(t.client, t.server, t.protocol, t.expect, "error", reason, round(seconds, 2), {})


def named(exc: Exception) -> str:
    """An exception as a reason: its class (with its module, but for built-ins) and its words."""
    detail = getattr(exc, "explanation", None) or str(exc) or "no detail"
    kind = type(exc).__qualname__ if type(exc).__module__ == "builtins" else f"{type(exc).__module__}.{type(exc).__qualname__}"
    return f"{kind}: {detail}"


def check_tunnel(lab: DockerLab, ctx: TunnelContext, router_node: str) -> TunnelResult:
    tunnel = ctx.tunnel
    proto = PROTOCOLS[tunnel.protocol]
    started = time.monotonic()
    # the router's drop counters (and a double NAT's upstream router's) may decide "down" before the deadline
    upstream = watched(lab, UPSTREAM_NODE, ctx) if ctx.topology.upstream else nullcontext()
    with watched(lab, router_node, ctx) as attempt, upstream as upstream_attempt:
        run = lab.exec(tunnel.client, f"sh {tunnel_dir(ctx)}/check.sh", timeout=check_seconds(deadline(ctx)))
    elapsed = time.monotonic() - started
    check_text, client_text = split_check_output(run.output)  # the client's evidence came with the verdict
    observed, millis, detail = parse_result(check_text, run.exit_code)

    router_command = router_evidence_command(str(ctx.client_lan), str(ctx.server_wan))
    router_text = lab.exec(router_node, router_command, timeout=EVIDENCE_SECONDS).output
    server_text = lab.exec(tunnel.server, sections_command(proto.server_evidence(ctx)), timeout=EVIDENCE_SECONDS).output

    client = parse_sections(client_text)
    router = parse_sections(router_text)
    server = parse_sections(server_text)
    all_entries = conntrack_lines(router.get("conntrack", ""))
    flows = flows_of(tunnel)
    entries = flow_entries(all_entries, flows)
    # counted from the attempt's start where the watcher read it: an earlier attempt's drops are not this one's
    all_hits, during = attempt.hits(rule_hits(router.get("counters", "")))
    hits = drops_for(all_hits, flows)
    when = DURING if during else SINCE_LOADED
    try:  # None without an upstream router; the verdict stands whatever this read does
        beyond, unread = upstream_evidence(lab, ctx, entries, upstream_attempt), []
    except Exception as exc:  # noqa: BLE001 - evidence, not the verdict
        beyond, unread = None, [f"the upstream router's evidence could not be read ({named(exc)})"]
    evidence = {
        "router_conntrack": entries,
        "router_drops": [f"{h.chain}: '{h.comment}' dropped {h.packets} packets {when}" for h in hits],
        "client": client,
        "server": server,
        "check_output": check_text.strip().splitlines()[-5:],
        **(beyond.to_evidence() if beyond else {}),
    }
    if tunnel.client == router_node:  # the router's own call: what comes back meets INPUT, not FORWARD
        evidence["router_input_drops"] = [f"{h.chain}: '{h.comment}' dropped {h.packets} packets {when}"
                                          for h in all_hits if h.chain == "INPUT" and h.comment in INPUT_DROPS]
    seen = Evidence(
        client=client,
        server=server,
        router=RouterEvidence(tuple(ConntrackEntry.parse(line) for line in all_entries), tuple(all_hits)),
        router_dials=tunnel.client == router_node,
    )
    facts = (beyond.facts(observed, ctx) if beyond else unread) + proto.diagnose(seen) \
        + (return_route_facts(server, ctx) if observed != "up" else [])
    reason = explain(observed, detail, facts, entries, hits, flows, ctx, when)
    seconds = millis / 1000 if millis is not None else elapsed
    return TunnelResult(
        tunnel.client, tunnel.server, tunnel.protocol, tunnel.expect, observed, reason, round(seconds, 2), evidence
    )
