"""The matrix in a terminal: protocols down, profiles across, the NAT row, then every mismatch explained."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lab.matrix.result import NAT_LEGEND, Cell, MatrixResult
from lab.matrix.text import clean, summary_line, timings, title

STYLE = {"up": "green", "down": "yellow", "skipped": "blue", "error": "red"}


def cell_markup(cell: Cell | None) -> str:
    if cell is None:
        return "[dim]—[/dim]"  # no shard brought this cell
    if cell.observed == "skipped":
        return "[blue]skip[/blue]"
    style = STYLE.get(cell.observed, "red")
    mark = "✓" if cell.passed else "[bold red]✗ FAIL[/bold red]"
    return f"[{style}]{escape(cell.observed)}[/{style}] {mark}"


def matrix_table(result: MatrixResult) -> Table:
    table = Table(
        title=escape(title(result)),
        title_justify="left",
        caption=escape(NAT_LEGEND),
        caption_justify="left",
    )
    table.add_column("protocol", no_wrap=True, style="bold")
    for profile in result.profiles:
        table.add_column(escape(profile.name), no_wrap=True)
    for protocol in result.protocols:
        table.add_row(escape(protocol), *(cell_markup(result.cell(p.name, protocol)) for p in result.profiles))
    table.add_section()
    table.add_row("NAT", *(escape(p.nat.short) if p.nat else "[dim]not measured[/dim]" for p in result.profiles))
    return table


def _explain(cell: Cell, colour: str, headline: str) -> list[str]:
    documented = cell.expected_reason or ("the profile expects it up" if cell.expect == "up" else "no reason given")
    return [
        f"[{colour}]{escape(cell.profile)} · {escape(cell.protocol)}[/{colour}]: {escape(headline)}",
        f"    documented: {escape(clean(documented))}",
        f"    observed:   {escape(clean(cell.reason) or 'no reason given')}",
    ]


def print_matrix(result: MatrixResult, console: Console) -> None:
    console.print(matrix_table(result))
    console.print(escape(f"timings: {timings(result)}"), style="dim")
    if result.runtime_reason:
        console.print(escape(f"runtime {result.runtime}: {result.runtime_reason}"), style="dim")
    lines: list[str] = []
    for cell in result.mismatches:
        lines += _explain(cell, "red", f"expected {cell.expect}, observed {cell.observed}")
    for cell in result.skipped:
        lines += _explain(cell, "blue", f"expected {cell.expect}, skipped")
    if lines:
        console.print("\n[bold]Cells not as expected[/bold]")
        for line in lines:
            console.print(line, soft_wrap=False)
    if result.missing:
        pairs = ", ".join(f"{p} · {proto}" for p, proto in result.missing)
        console.print(f"[red]missing cells (no shard ran them):[/red] {escape(pairs)}")
    colour = "green" if result.passed else "red"
    console.print(f"\n[{colour}]{escape(summary_line(result))}[/{colour}]")
