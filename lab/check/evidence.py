"""The evidence a tunnel check gathers, typed: the router's conntrack entries and the counters
of vpnlab's rules, and the client's and server's sections by name.

``lab.check`` builds an :class:`Evidence` for each tunnel it checks; a protocol's
``diagnose`` reads it and says in words what it shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from lab.protocols.base import Flow
from lab.router.comments import COMMENT_PREFIX, is_flow_drop

COMMENT_RE = re.compile(r"/\* (.*?) \*/")
_HELPER_RE = re.compile(r"\bhelper=(\S+)")
_DPORT_RE = re.compile(r"\bdport=(\d+)")
_ADDRESS_RE = re.compile(r"\b(src|dst)=(\S+)")
EVIDENCE_SECONDS = 60.0  # an exec gathering evidence (a few quick commands) at most; past it, an error


@dataclass(frozen=True)
class RuleHit:
    chain: str
    comment: str
    packets: int


@dataclass(frozen=True)
class ConntrackEntry:
    """One ``conntrack -L`` line, parsed as far as the diagnoses need."""

    line: str
    proto: str  # the first word: tcp, udp, gre...

    @classmethod
    def parse(cls, line: str) -> ConntrackEntry:
        line = line.strip()
        return cls(line, line.split()[0] if line else "")

    @property
    def unreplied(self) -> bool:
        return "[UNREPLIED]" in self.line

    @property
    def assured(self) -> bool:
        return "[ASSURED]" in self.line

    @property
    def helper(self) -> str | None:
        """The conntrack helper tracking the entry ('pptp'), if any."""
        match = _HELPER_RE.search(self.line)
        return match.group(1) if match else None

    @property
    def dport(self) -> int | None:
        """The original direction's destination port (TCP/UDP)."""
        match = _DPORT_RE.search(self.line)
        return int(match.group(1)) if match else None

    @property
    def source_translated(self) -> bool:
        """Whether the router rewrote the sender's address (NAT): the reply then goes to
        another address than the original sender's."""
        addresses = _ADDRESS_RE.findall(self.line)
        if len(addresses) < 4:
            return False
        original_src, reply_dst = addresses[0][1], addresses[3][1]
        return original_src != reply_dst

    def is_flow(self, flow: Flow) -> bool:
        return self.proto == flow.proto and (flow.port is None or f"dport={flow.port} " in self.line + " ")


@dataclass(frozen=True)
class RouterEvidence:
    """What the router showed after the check."""

    conntrack: tuple[ConntrackEntry, ...] = ()  # every entry between client and server, and GRE from the server
    hits: tuple[RuleHit, ...] = ()  # vpnlab rules that counted packets

    @classmethod
    def parse(cls, conntrack: str = "", counters: str = "") -> RouterEvidence:
        """From ``conntrack -L`` output and the 'chain NAME' + ``iptables -L -v -n -x`` listing."""
        return cls(tuple(ConntrackEntry.parse(line) for line in conntrack_lines(conntrack)), tuple(rule_hits(counters)))

    def entries(self, proto: str, dport: int | None = None) -> list[ConntrackEntry]:
        return [e for e in self.conntrack if e.proto == proto and (dport is None or e.dport == dport)]

    def packets(self, comment: str, chain: str | None = None) -> int | None:
        """Packets the rule with this comment counted (None: it counted none, or there is no such rule)."""
        counted = [h.packets for h in self.hits if h.comment == comment and chain in (None, h.chain)]
        return sum(counted) if counted else None


@dataclass(frozen=True)
class Evidence:
    """Everything a protocol's diagnosis may read about one tunnel check."""

    client: Mapping[str, str] = field(default_factory=dict)  # client sections by name ('client log', 'pppd', ...)
    server: Mapping[str, str] = field(default_factory=dict)  # server sections by name ('log', 'charon log', ...)
    router: RouterEvidence = field(default_factory=RouterEvidence)
    # the client is the router itself (lab.router.dialing): its traffic is local, not forwarded
    router_dials: bool = False


def router_evidence_command(client_ip: str, server_ip: str) -> str:
    return (
        "echo '==== conntrack'; "
        f"conntrack -L -s {client_ip} -d {server_ip} 2>/dev/null; "
        f"conntrack -L -p gre -s {server_ip} 2>/dev/null; "
        "echo '==== counters'; "
        "for chain in FORWARD INPUT; do echo \"chain $chain\"; iptables -L $chain -v -n -x 2>&1; done"
    )


def conntrack_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "src=" in line]


def rule_hits(text: str) -> list[RuleHit]:
    hits = []
    chain = ""
    for line in text.splitlines():
        if line.startswith("chain "):
            chain = line.split()[1]
            continue
        comment = COMMENT_RE.search(line)
        fields = line.split()
        if not comment or not fields or not fields[0].isdigit():
            continue
        if comment.group(1).startswith(COMMENT_PREFIX) and int(fields[0]) > 0:
            hits.append(RuleHit(chain, comment.group(1), int(fields[0])))
    return hits


def drops_for(hits: list[RuleHit], flows: tuple[Flow, ...]) -> list[RuleHit]:
    """Drop-rule hits that concern these flows (named in the rule's comment)."""
    chosen = []
    for hit in hits:
        if not is_flow_drop(hit.comment):
            continue
        for flow in flows:
            if _names(hit.comment, flow) or _range_covers(hit.comment, flow):
                chosen.append(hit)
                break
    return chosen


def _names(comment: str, flow: Flow) -> bool:
    """The comment names the flow as a whole word: 'udp/500' is not named by 'block udp/5000'
    (a drop of another flow would otherwise be counted as this one's, and decide it down)."""
    return re.search(rf"(?<![\w/]){re.escape(flow.label)}(?![\w])", comment) is not None


def _range_covers(comment: str, flow: Flow) -> bool:
    match = re.search(r"(tcp|udp)/(\d+)-(\d+)", comment)
    return bool(match and flow.port and match.group(1) == flow.proto and int(match.group(2)) <= flow.port <= int(match.group(3)))


def flow_entries(lines: list[str], flows: tuple[Flow, ...]) -> list[str]:
    return [line for line in lines if any(ConntrackEntry.parse(line).is_flow(flow) for flow in flows)]
