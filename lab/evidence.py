"""Reading the router's evidence: conntrack entries and the counters of vpnlab's drop rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.protocols.base import Flow
from lab.router.rules import COMMENT_PREFIX

COMMENT_RE = re.compile(r"/\* (.*?) \*/")


@dataclass(frozen=True)
class RuleHit:
    chain: str
    comment: str
    packets: int


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
        text = hit.comment
        if "block" not in text and "passthrough" not in text:
            continue
        for flow in flows:
            if flow.label in text or _range_covers(text, flow):
                chosen.append(hit)
                break
    return chosen


def _range_covers(comment: str, flow: Flow) -> bool:
    match = re.search(r"(tcp|udp)/(\d+)-(\d+)", comment)
    return bool(match and flow.port and match.group(1) == flow.proto and int(match.group(2)) <= flow.port <= int(match.group(3)))


def flow_entries(lines: list[str], flows: tuple[Flow, ...]) -> list[str]:
    out = []
    for line in lines:
        proto = line.split()[0]
        for flow in flows:
            if proto == flow.proto and (flow.port is None or f"dport={flow.port} " in line + " "):
                out.append(line)
                break
    return out
