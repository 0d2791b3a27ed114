"""The matrix as Markdown (a CI job summary, a pull-request comment): grid, NAT row, lab diagram, evidence."""

from __future__ import annotations

import re

from lab.matrix.result import NAT_LEGEND, Cell, LabLayout, MatrixResult
from lab.matrix.text import evidence_sections, outcome, summary_line, timings, title, trimmed

SYMBOL = {"up": "✅ up", "down": "⛔ down", "skipped": "⏭ skipped", "error": "⚠️ error"}


def _inline(text: str) -> str:
    """Untrusted text inside a table cell or a paragraph: no HTML, no table breaks, one line."""
    text = " ".join(text.split())
    return re.sub(r"([\\`*_\[\]<>|#&])", r"\\\1", text)


def _fenced(text: str) -> list[str]:
    """A code block whose fence is longer than any backtick run inside, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text, fence]


def cell_link(cell: Cell | None) -> str:
    if cell is None:
        return "—"
    label = SYMBOL.get(cell.observed, cell.observed)
    if not cell.passed and cell.observed != "skipped":
        label = f"⚠️ {cell.observed} (expected {cell.expect})"
    return f"[{label}](#{cell.anchor})"


def _label(*lines: str) -> str:
    return '"' + "<br/>".join(line.replace('"', "#quot;") for line in lines if line) + '"'


def diagram(lab: LabLayout) -> list[str]:
    """A mermaid flowchart: clients on the LAN, the router between, servers on the WAN."""
    lines = ["```mermaid", "flowchart LR"]
    lines.append(f"  subgraph lan[{_label('LAN ' + lab.lan)}]")
    lines += [f"    c{i}[{_label(c.name, c.address)}]" for i, c in enumerate(lab.clients)]
    lines.append("  end")
    lines.append(f"  router{{{{{_label(lab.router, 'LAN ' + lab.router_lan, 'WAN ' + lab.router_wan)}}}}}")
    lines.append(f"  subgraph wan[{_label('WAN ' + lab.wan)}]")
    lines += [f"    s{i}[{_label(s.name, s.address, ', '.join(s.protocols))}]" for i, s in enumerate(lab.servers)]
    lines.append("  end")
    lines += [f"  c{i} --- router" for i in range(len(lab.clients))]
    lines += [f"  router --- s{i}" for i in range(len(lab.servers))]
    lines.append("```")
    return lines


def _cell_section(cell: Cell) -> list[str]:
    documented = cell.expected_reason or ("the profile expects it up" if cell.expect == "up" else "no reason given")
    lines = [
        f'<a id="{cell.anchor}"></a>',
        "",
        f"### {_inline(cell.profile)} · {_inline(cell.protocol)}",
        "",
        f"- **{outcome(cell)}**: expected {cell.expect}, observed {cell.observed} "
        f"({cell.client} → {cell.server}, {cell.seconds:.2f} s)",
        f"- documented: {_inline(documented)}",
        f"- observed: {_inline(cell.reason or 'no reason given')}",
        "",
    ]
    for heading, text in evidence_sections(cell):
        lines += [f"**{_inline(heading)}**", "", *_fenced(trimmed(text)), ""]
    return lines


def render_markdown(result: MatrixResult) -> str:
    names = [p.name for p in result.profiles]
    lines = [f"# {_inline(title(result))}", "", f"**{summary_line(result)}**", ""]
    odd = result.mismatches + result.skipped
    if odd:
        links = [f"[{_inline(c.profile)} · {_inline(c.protocol)}](#{c.anchor}) ({c.observed}, expected {c.expect})"
                 for c in odd]
        lines += ["Not as expected: " + "; ".join(links), ""]
    if result.missing:
        lines += ["Missing (no shard ran them): " + ", ".join(f"{a} · {b}" for a, b in result.missing), ""]
    lines += ["| protocol | " + " | ".join(map(_inline, names)) + " |", "|---" * (len(names) + 1) + "|"]
    for protocol in result.protocols:
        row = " | ".join(cell_link(result.cell(n, protocol)) for n in names)
        lines.append(f"| **{_inline(protocol)}** | {row} |")
    nat = [_inline(p.nat.short) if p.nat else "not measured" for p in result.profiles]
    lines += ["| *NAT* | " + " | ".join(nat) + " |", "", f"_{NAT_LEGEND}_", ""]
    lines += [
        f"- runtime: **{_inline(result.runtime)}** ({_inline(result.runtime_reason)})",
        f"- kernel: `{result.kernel.replace('`', '')}`",
        f"- vpnlab {_inline(result.version)}, started {_inline(result.started)}" + (
            f", shard {result.shard}" if result.shard else ""),
        f"- timings: {_inline(timings(result))}",
        "",
        "## Lab",
        "",
        *diagram(result.lab),
        "",
        "## Profiles",
        "",
        "| profile | stands for | NAT behaviour |",
        "|---|---|---|",
    ]
    for p in result.profiles:
        nat = _inline(p.nat.summary or p.nat.short) if p.nat else "not measured"
        lines.append(f"| {_inline(p.name)} | {_inline(p.description)} | {nat} |")
    lines += ["", "## Cells", ""]
    for cell in result.cells:
        lines += _cell_section(cell)
    return "\n".join(lines).rstrip("\n") + "\n"
