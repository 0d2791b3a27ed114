"""The upstream router's side of a tunnel's evidence (double NAT, ``upstream:``).

A flow through two NAT routers leaves a conntrack entry and rule counters in each. The
upstream router sees the tunnel's packets after the router translated them: from the
router's middle address (the client's own LAN address when the router routes, nat: none)
to the server. Its drop rules carry the same comments as the router's; the reasons name the
router whose rule dropped the flow, so "down" says which switch on which router did it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lab.check.explain import DURING, SINCE_LOADED
from lab.check.evidence import EVIDENCE_SECONDS, ConntrackEntry, RuleHit, conntrack_lines, drops_for, flow_entries, router_evidence_command, rule_hits
from lab.check.scripts import parse_sections
from lab.protocols.base import TunnelContext
from lab.protocols.ports import flows_of
from lab.topology.model import UPSTREAM_NODE

if TYPE_CHECKING:  # pragma: no cover
    from lab.check.blocked import Attempt
    from lab.runtime.lab import DockerLab


@dataclass(frozen=True)
class UpstreamEvidence:
    """What the upstream router showed for one tunnel: its conntrack entries for the tunnel's
    flows and the hits of its drop rules that name them."""

    source: str  # the tunnel's sender as the upstream router sees it
    entries: list[str] = field(default_factory=list)
    hits: list[RuleHit] = field(default_factory=list)
    # conntrack helpers the router gave the tunnel's flows that the upstream router's entries lack
    helpers_missing: tuple[str, ...] = ()
    when: str = DURING  # how the drops are counted (lab.check.explain)

    def facts(self, observed: str, ctx: TunnelContext) -> list[str]:
        """The reason's words: which of this router's rules dropped the flow, and its conntrack."""
        node = f"upstream router '{UPSTREAM_NODE}'"
        if observed == "up":
            return [f"{node} conntrack holds {len(self.entries)} entr{'y' if len(self.entries) == 1 else 'ies'} for the flow"] \
                if self.entries else []
        facts = [f"{node} rule '{h.comment}' ({h.chain}) dropped {h.packets} packets {self.when}" for h in self.hits]
        labels = ", ".join(f.label for f in flows_of(ctx.tunnel))
        between = f"{labels} from {self.source} to {ctx.server_wan}"
        if not self.entries and not self.hits:
            facts.append(f"no {node} conntrack entry for {between}")
        elif any("[UNREPLIED]" in line for line in self.entries):
            facts.append(f"{node} conntrack shows {between} unreplied")
        elif self.entries:
            facts.append(f"{node} conntrack shows {between} answered")
        facts += [f"the router's {h} helper tracks the flow, the {node} has no {h} helper on it "
                  "(behind two NATs each needs it)" for h in self.helpers_missing]
        return facts

    def to_evidence(self) -> dict[str, Any]:
        return {
            "upstream_conntrack": self.entries,
            "upstream_drops": [f"{h.chain}: '{h.comment}' dropped {h.packets} packets {self.when}" for h in self.hits],
        }


def upstream_source(ctx: TunnelContext) -> str:
    """The tunnel's sender as the upstream router sees it: the router's middle address when the
    router masquerades, else the client's own LAN address."""
    routed = ctx.topology.router.nat == "none"
    return str(ctx.client_lan if routed else ctx.plan.router_wan)


_SPORT_RE = re.compile(r"\bsport=(\d+)")
_DPORT_RE = re.compile(r"\bdport=(\d+)")


def mapped_ports(router_entries: list[str]) -> set[str]:
    """The source ports the router gave the tunnel's flows (its entries' reply destination port)."""
    ports = set()
    for line in router_entries:
        dports = _DPORT_RE.findall(line)
        if len(dports) >= 2:
            ports.add(dports[1])
    return ports


def own_entries(entries: list[str], router_entries: list[str]) -> list[str]:
    """The upstream entries of this tunnel alone. Behind a masquerading router every client has
    the router's one middle address: a port flow is this tunnel's when its source port is one
    the router mapped this tunnel's flow to; an entry without ports (ESP, GRE) is kept."""
    ports = mapped_ports(router_entries)
    return [line for line in entries if not _SPORT_RE.search(line) or _SPORT_RE.findall(line)[0] in ports]


def upstream_evidence(lab: DockerLab, ctx: TunnelContext, router_entries: list[str],
                      attempt: Attempt | None = None) -> UpstreamEvidence | None:
    """The upstream router's evidence for the tunnel now (None: the topology has no upstream);
    ``router_entries``: the router's conntrack entries for the tunnel's flows; ``attempt``: the
    upstream router's watch of this attempt, whose first reading its drops are counted from."""
    if ctx.topology.upstream is None:
        return None
    source = upstream_source(ctx)
    command = router_evidence_command(source, str(ctx.server_wan))
    sections = parse_sections(lab.exec(UPSTREAM_NODE, command, timeout=EVIDENCE_SECONDS).output)
    flows = flows_of(ctx.tunnel)
    entries = flow_entries(conntrack_lines(sections.get("conntrack", "")), flows)
    if ctx.topology.router.masquerades:
        entries = own_entries(entries, router_entries)
    hits, during = (attempt.hits if attempt else lambda h: (h, False))(rule_hits(sections.get("counters", "")))
    return UpstreamEvidence(source, entries, drops_for(hits, flows), helpers_missing(router_entries, entries),
                            DURING if during else SINCE_LOADED)


def helpers_missing(router_entries: list[str], entries: list[str]) -> tuple[str, ...]:
    """Helpers on the router's entries of the tunnel that none of the upstream's entries has."""
    def helpers(lines: list[str]) -> list[str]:
        return [h for h in (ConntrackEntry.parse(line).helper for line in lines) if h is not None]

    upstream = set(helpers(entries))
    return tuple(h for h in dict.fromkeys(helpers(router_entries)) if h not in upstream)
