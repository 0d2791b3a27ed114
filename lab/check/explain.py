"""Wording a verdict: the up-check's own line, then the router's evidence, then the protocol's facts."""

from __future__ import annotations

from lab.check.evidence import RuleHit
from lab.protocols.base import Flow, TunnelContext

# how a reason counts a router rule's drops: from the attempt's start (the watcher's reading,
# lab.check.blocked), or, when the router could not be read before it, since the rules were loaded
DURING = "during this check"
SINCE_LOADED = "since the rules were loaded"


def parse_result(output: str, exit_code: int) -> tuple[str, int | None, str]:
    for line in reversed(output.splitlines()):
        if line.startswith("vpnlab-result "):
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[1] in ("up", "down", "error") and parts[2].isdigit():
                return parts[1], int(parts[2]), parts[3]
    tail = " | ".join(output.strip().splitlines()[-3:]) or "no output"
    return "error", None, f"the up-check ended without a verdict (exit {exit_code}): {tail}"


def explain(
    observed: str,
    detail: str,
    protocol_facts: list[str],
    entries: list[str],
    hits: list[RuleHit],
    flows: tuple[Flow, ...],
    ctx: TunnelContext,
    when: str = DURING,
) -> str:
    """The verdict's detail, then the router's evidence, then what the protocol read in its logs."""
    facts = [detail]
    if observed == "up":
        if entries:
            facts.append(f"router conntrack holds {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} for the flow")
        return "; ".join(facts + protocol_facts)
    for hit in hits:
        facts.append(f"router rule '{hit.comment}' ({hit.chain}) dropped {hit.packets} packets {when}")
    labels = ", ".join(f.label for f in flows)
    if not entries and not hits:
        facts.append(f"no router conntrack entry for {labels} to {ctx.server_wan}")
    elif any("[UNREPLIED]" in line for line in entries):
        facts.append(f"router conntrack shows {labels} to {ctx.server_wan} unreplied")
    elif entries:
        facts.append(f"router conntrack shows {labels} to {ctx.server_wan} answered")
    return "; ".join(facts + protocol_facts)


UNREACHABLE = "Network is unreachable"


def return_route_facts(server_sections: dict[str, str], ctx: TunnelContext) -> list[str]:
    """A server that cannot answer the client because it has no route back to the LAN (routed,
    un-NATed traffic without a return route): its daemons log "Network is unreachable"."""
    if not any(UNREACHABLE in text for text in server_sections.values()):
        return []
    return [f"the server has no route back to {ctx.plan.lan} (its log says '{UNREACHABLE}')"]
