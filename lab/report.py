"""Showing results to a person: the tunnel table.

Names, reasons and engine answers are shown through ``lab.display.shown``: they quote daemons' logs.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lab import __version__
from lab.check.results import RunResult
from lab.display import shown
from lab.matrix.result import NatBehaviour
from lab.steps.results import step_line

STYLE = {"up": "green", "down": "yellow", "skipped": "blue", "error": "red"}


def tunnel_table(result: RunResult) -> Table:
    table = Table(
        title=f"lab {shown(result.name)}: runtime {shown(result.runtime)}, kernel {shown(result.kernel)}",
        title_justify="left",
        caption=f"vpnlab {__version__}",
        caption_justify="right",
    )
    table.add_column("tunnel", no_wrap=True)
    for column in ("expect", "observed", "", "seconds"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for t in result.tunnels:
        mark = "[green]✓ pass[/green]" if t.passed else "[red]✗ FAIL[/red]"
        if t.observed == "skipped":
            mark = "[blue]- skip[/blue]"
        style = STYLE.get(t.observed, "")
        table.add_row(
            shown(f"{t.client} → {t.server} ({t.protocol})"),
            shown(t.expect),
            f"[{style}]{shown(t.observed)}[/{style}]" if style else shown(t.observed),
            mark,
            f"{t.seconds:.2f}",
            shown(t.reason),
        )
    return table


def nat_line(nat: NatBehaviour) -> str:
    """The router's measured NAT behaviour (RFC 5780), one line under the table."""
    short = "" if nat.mapping == "unknown" and nat.filtering == "unknown" else f" [bold]{shown(nat.short)}[/bold]:"
    return f"NAT (RFC 5780 probe):{short} {shown(nat.summary)}"


def print_result(result: RunResult, console: Console) -> None:
    console.print(tunnel_table(result))
    for step in result.steps or []:
        console.print(step_line(step))
    if result.nat is not None:
        console.print(nat_line(result.nat))
    console.print(f"runtime {shown(result.runtime)}: {shown(result.runtime_reason)}", style="dim")
    failed = [t for t in result.tunnels if not t.passed and t.observed != "skipped"]
    skipped = [t for t in result.tunnels if t.observed == "skipped"]
    summary = f"{len(result.tunnels) - len(failed) - len(skipped)} as expected, {len(failed)} not, {len(skipped)} skipped"
    steps_failed = [s for s in result.steps or [] if not s.passed]
    if result.steps:
        summary += f"; steps: {len(result.steps) - len(steps_failed)} as expected, {len(steps_failed)} not"
    colour = "green" if not failed and not steps_failed else "red"
    console.print(f"[{colour}]{summary}[/{colour}]")
