"""Wording every matrix output shares: evidence sections, trimming, timings, the summary line."""

from __future__ import annotations

import json
import re
from typing import Any

from lab.matrix.result import PHASES, Cell, MatrixResult

TRIM_LINES = 40  # a section longer than this keeps its last lines: a log's end says why
# Characters XML 1.0 cannot hold (and a terminal would act on): evidence is raw daemon output.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
ANSI = re.compile("\x1b\\[[0-9;?]*[A-Za-z]")  # colour codes in daemon logs: noise once out of a terminal


def clean(text: str) -> str:
    return CONTROL.sub("", ANSI.sub("", text))


def trimmed(text: str, limit: int = TRIM_LINES) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= limit:
        return "\n".join(lines)
    return "\n".join([f"[… {len(lines) - limit} earlier lines trimmed …]", *lines[-limit:]])


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return json.dumps(value, indent=2, sort_keys=True)


def evidence_sections(cell: Cell) -> list[tuple[str, str]]:
    """(title, text) per non-empty piece of evidence: the router's first, then client and server logs."""
    evidence = dict(cell.evidence)
    sections: list[tuple[str, str]] = []
    for key, title in (("router_conntrack", "router conntrack"), ("router_drops", "router drops"),
                       ("check_output", "up-check output")):
        if key in evidence:
            sections.append((title, _as_text(evidence.pop(key))))
    for side, node in (("client", cell.client), ("server", cell.server)):
        value = evidence.pop(side, None)
        if isinstance(value, dict):
            sections += [(f"{side} {node}: {name}", _as_text(text)) for name, text in value.items()]
        elif value:
            sections.append((f"{side} {node}", _as_text(value)))
    sections += [(key.replace("_", " "), _as_text(value)) for key, value in evidence.items()]
    return [(title, clean(text)) for title, text in sections if text.strip()]


def evidence_summary(cell: Cell) -> str:
    """A few lines for places without room for logs (JUnit): the router's view and the check's last words."""
    lines = []
    for title, text in evidence_sections(cell):
        if title.startswith(("router", "up-check")):
            lines += [f"{title}:", *(f"  {line}" for line in trimmed(text, 10).splitlines())]
    return "\n".join(lines)


def outcome(cell: Cell) -> str:
    """'as expected', 'skipped' or 'MISMATCH'."""
    if cell.observed == "skipped":
        return "skipped"
    return "as expected" if cell.passed else "MISMATCH"


def timings(result: MatrixResult) -> str:
    known = [p for p in PHASES if p in result.seconds] + [p for p in result.seconds if p not in PHASES]
    text = ", ".join(f"{p.replace('_', ' ')} {result.seconds[p]:.1f}s" for p in known)
    if result.shard_seconds:
        text += " (shards: " + ", ".join(f"{s} {v:.1f}s" for s, v in result.shard_seconds.items()) + ")"
    return text


def summary_line(result: MatrixResult) -> str:
    s = result.summary()
    parts = [f"{s['as_expected']} of {s['cells']} cells as expected", f"{s['mismatched']} not", f"{s['skipped']} skipped"]
    if s["missing"]:
        parts.append(f"{s['missing']} missing")
    verdict = "PASS" if result.passed else "FAIL"
    return f"{verdict}: " + ", ".join(parts)


def title(result: MatrixResult) -> str:
    shard = f", shard {result.shard}" if result.shard else ""
    return f"vpnlab {result.version} passthrough matrix: runtime {result.runtime}, kernel {result.kernel}{shard}"
