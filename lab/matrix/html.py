"""The matrix as one self-contained HTML file: inline CSS and SVG, nothing fetched, every text escaped."""

from __future__ import annotations

from html import escape

from lab.matrix.diagram import lab_svg
from lab.matrix.result import NAT_LEGEND, PHASES, Cell, MatrixResult
from lab.matrix.text import clean, evidence_sections, outcome, summary_line, title, trimmed

WORD = {"up": "up", "down": "down", "skipped": "skip", "error": "error"}

CSS = """
:root { --up:#d3f2d8; --up-ink:#14612a; --down:#fff0b8; --down-ink:#6b5000; --skip:#dbe7ff; --skip-ink:#1f4a99;
  --error:#ffd6d3; --error-ink:#9b1c12; --line:#d0d4da; --muted:#5b6470; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2329; margin: 0;
  background: #f6f7f9; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 32px 0 10px; }
.verdict { display: inline-block; font-weight: 600; padding: 4px 12px; border-radius: 6px; margin: 4px 0 12px; }
.verdict.pass { background: var(--up); color: var(--up-ink); } .verdict.fail { background: var(--error); color: var(--error-ink); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
table { border-collapse: collapse; background: #fff; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 0; text-align: center; }
table.grid thead th { padding: 8px 10px; font-size: 13px; background: #eef0f3; }
table.grid tbody th { padding: 8px 12px; text-align: left; background: #eef0f3; white-space: nowrap; }
table.grid td a { display: block; padding: 10px 8px; color: inherit; text-decoration: none; min-width: 92px; }
table.grid td a:hover { outline: 2px solid #1d2329; outline-offset: -2px; }
.up { background: var(--up); color: var(--up-ink); } .down { background: var(--down); color: var(--down-ink); }
.skipped { background: var(--skip); color: var(--skip-ink); } .error { background: var(--error); color: var(--error-ink); }
td.fail { box-shadow: inset 0 0 0 3px var(--error-ink); font-weight: 700; } table.grid td.fail a { color: var(--error-ink); }
td.missing { color: var(--muted); background: #fff; padding: 10px 8px; }
tr.nat td { padding: 8px; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; background: #fff; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; list-style: none; padding: 0; margin: 10px 0 4px; font-size: 13px; }
.legend span { display: inline-block; width: 14px; height: 14px; border-radius: 3px; vertical-align: -2px; margin-right: 5px;
  border: 1px solid var(--line); }
.legend .fail { box-shadow: inset 0 0 0 3px var(--error-ink); background: #fff; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0; }
table.plain td:first-child { white-space: nowrap; }
table.plain th, table.plain td { border-bottom: 1px solid var(--line); padding: 6px 12px; text-align: left; vertical-align: top; }
.bar { display: inline-block; height: 10px; background: #8aa4c8; border-radius: 2px; }
svg.lab { background: #fff; border: 1px solid var(--line); border-radius: 8px; max-width: 100%; height: auto; }
svg.lab text { font: 13px system-ui, sans-serif; text-anchor: middle; fill: #1d2329; }
svg.lab text.name { font-weight: 700; }
svg.lab text.segment { fill: var(--muted); font-weight: 600; text-anchor: start; }
svg.lab rect.segment { fill: #f3f5f8; stroke: var(--line); stroke-dasharray: 6 4; }
svg.lab rect.client, svg.lab rect.server { fill: #fff; stroke: #7d8896; }
svg.lab rect.router { fill: #fff7e6; stroke: #b07a00; stroke-width: 2; }
svg.lab .wires line { stroke: #7d8896; stroke-width: 2; }
details.cell { color: #1d2329; background: #fff; border: 1px solid var(--line); border-left-width: 6px; border-radius: 6px; margin: 6px 0; }
details.cell.up { border-left-color: var(--up-ink); } details.cell.down { border-left-color: #c9a100; }
details.cell.skipped { border-left-color: var(--skip-ink); } details.cell.error, details.cell.fail { border-left-color: var(--error-ink); }
details.cell > summary { cursor: pointer; padding: 8px 12px; background: #fff; color: #1d2329; }
details.cell > div { padding: 0 16px 12px; } details.cell p { margin: 2px 0 6px; }
.badge.fail { background: var(--error); color: var(--error-ink); }
details.cell:target { outline: 3px solid #1d2329; }
.badge { display: inline-block; min-width: 84px; text-align: center; border-radius: 4px; padding: 0 6px; margin-right: 8px;
  font-size: 13px; font-weight: 600; }
pre { background: #f3f5f8; border: 1px solid var(--line); border-radius: 4px; padding: 8px 10px; overflow-x: auto;
  font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0 10px; }
h4 { margin: 10px 0 2px; font-size: 13px; color: var(--muted); }
"""

# Opens a cell's <details> when a grid link (or a pasted URL) points at it; inline, so nothing is fetched.
SCRIPT = ("function openTarget(){var e=document.getElementById(decodeURIComponent(location.hash.slice(1)));"
          "if(e&&e.tagName==='DETAILS'){e.open=true;}}addEventListener('hashchange',openTarget);openTarget();")


def _cell_td(cell: Cell | None) -> str:
    if cell is None:
        return '<td class="missing" title="no shard ran this cell">—</td>'
    mark = "" if cell.observed == "skipped" else (" ✓" if cell.passed else " ✗ FAIL")
    css = cell.observed + ("" if cell.passed or cell.observed == "skipped" else " fail")
    tip = f"expected {cell.expect}, observed {cell.observed}: {clean(cell.reason)}"
    return (f'<td class="{escape(css)}" title="{escape(tip)}"><a href="#{escape(cell.anchor)}">'
            f"{escape(WORD.get(cell.observed, cell.observed))}{mark}</a></td>")


def _grid(result: MatrixResult) -> list[str]:
    out = ['<table class="grid"><thead><tr><th>protocol</th>']
    out += [f'<th title="{escape(p.description)}">{escape(p.name)}</th>' for p in result.profiles]
    out.append("</tr></thead><tbody>")
    for protocol in result.protocols:
        out.append(f"<tr><th>{escape(protocol)}</th>")
        out += [_cell_td(result.cell(p.name, protocol)) for p in result.profiles]
        out.append("</tr>")
    out.append('<tr class="nat"><th>NAT</th>')
    for p in result.profiles:
        text, tip = (p.nat.short, p.nat.summary) if p.nat else ("not measured", "")
        out.append(f'<td title="{escape(tip)}">{escape(text)}</td>')
    out.append("</tr></tbody></table>")
    out.append('<ul class="legend"><li><span class="up"></span>up</li><li><span class="down"></span>down</li>'
               '<li><span class="skipped"></span>skipped</li><li><span class="error"></span>error</li>'
               '<li>✓ as expected</li><li><span class="fail"></span>✗ FAIL: not as expected</li>'
               "<li>click a cell for its evidence</li></ul>")
    out.append(f'<p class="note">{escape(NAT_LEGEND)}</p>')
    return out


def _facts(result: MatrixResult) -> list[str]:
    facts = [("runtime", f"{result.runtime}: {result.runtime_reason}" if result.runtime_reason else result.runtime),
             ("kernel", result.kernel), ("vpnlab", result.version), ("started", result.started)]
    if result.shard:
        facts.append(("shard", result.shard))
    return ['<dl class="facts">', *(f"<dt>{k}</dt><dd>{escape(v)}</dd>" for k, v in facts), "</dl>"]


def _timings(result: MatrixResult) -> list[str]:
    phases = [p for p in PHASES if p in result.seconds] + [p for p in result.seconds if p not in PHASES]
    longest = max(result.seconds.values(), default=0.0) or 1.0
    rows = [f'<tr><th>{escape(p.replace("_", " "))}</th><td>{result.seconds[p]:.1f} s</td>'
            f'<td><span class="bar" style="width:{int(240 * result.seconds[p] / longest)}px"></span></td></tr>'
            for p in phases]
    rows += [f"<tr><th>shard {escape(s)}</th><td>{v:.1f} s</td><td></td></tr>" for s, v in result.shard_seconds.items()]
    return ['<table class="plain">', *rows, "</table>"] if rows else []


def _profiles(result: MatrixResult) -> list[str]:
    out = ['<table class="plain"><tr><th>profile</th><th>stands for</th><th>source</th><th>NAT behaviour</th></tr>']
    for p in result.profiles:
        nat = "not measured"
        if p.nat:
            nat = escape(p.nat.summary or p.nat.short)
            if p.nat.evidence:
                nat += f"<pre>{escape(clean(chr(10).join(p.nat.evidence)))}</pre>"
        out.append(f"<tr><td><b>{escape(p.name)}</b></td><td>{escape(p.description)}</td>"
                   f"<td>{escape(p.source)}</td><td>{nat}</td></tr>")
    out.append("</table>")
    return out


def _cell_details(cell: Cell) -> str:
    css = f"cell {cell.observed}" + ("" if cell.passed or cell.observed == "skipped" else " fail")
    is_open = "" if cell.passed else " open"
    documented = cell.expected_reason or ("the profile expects it up" if cell.expect == "up" else "no reason given")
    mark = "" if cell.observed == "skipped" else (" ✓" if cell.passed else " ✗ FAIL")
    parts = [
        f'<details class="{css}" id="{escape(cell.anchor)}"{is_open}><summary>'
        f'<span class="badge {escape(css[5:])}">{escape(WORD.get(cell.observed, cell.observed))}{mark}</span>'
        f"<b>{escape(cell.profile)} · {escape(cell.protocol)}</b> — {escape(outcome(cell))}: expected "
        f"{escape(cell.expect)}, observed {escape(cell.observed)} ({escape(cell.client)} → {escape(cell.server)}, "
        f"{cell.seconds:.2f} s)</summary><div>",
        f"<h4>documented</h4><p>{escape(clean(documented))}</p>",
        f"<h4>observed</h4><p>{escape(clean(cell.reason) or 'no reason given')}</p>",
    ]
    for heading, text in evidence_sections(cell):
        parts.append(f"<h4>{escape(heading)}</h4><pre>{escape(trimmed(text))}</pre>")
    return "".join(parts) + "</div></details>"


def render_html(result: MatrixResult) -> str:
    verdict = "pass" if result.passed else "fail"
    odd = result.mismatches + result.skipped
    body = [
        f"<h1>{escape(title(result))}</h1>",
        f'<div class="verdict {verdict}">{escape(summary_line(result))}</div>',
        *_facts(result),
        "<h2>Matrix</h2>", *_grid(result),
    ]
    if odd or result.missing:
        body.append("<h2>Not as expected</h2><ul>")
        body += [f'<li><a href="#{escape(c.anchor)}">{escape(c.profile)} · {escape(c.protocol)}</a>: expected '
                 f"{escape(c.expect)}, observed {escape(c.observed)} — {escape(clean(c.reason))}</li>" for c in odd]
        body += [f"<li>{escape(p)} · {escape(q)}: missing (no shard ran it)</li>" for p, q in result.missing]
        body.append("</ul>")
    body += ["<h2>Timings</h2>", *_timings(result), "<h2>Lab</h2>", lab_svg(result.lab),
             "<h2>Profiles</h2>", *_profiles(result), "<h2>Cells</h2>"]
    body += [_cell_details(c) for c in result.cells]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title(result))}</title><style>{CSS}</style></head>\n<body><main>\n"
        + "\n".join(body)
        + f"\n</main><script>{SCRIPT}</script></body></html>\n"
    )
