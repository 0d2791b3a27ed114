"""Live progress of a matrix run on stderr: cells done, running and left, and what each lane is doing.

In a terminal a rich Live table refreshes four times a second (each phase shows how long it
has lasted, so no wait is silent); in a log (CI) every phase change is one timestamped line.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lab.matrix.result import Cell


@dataclass
class Lane:
    label: str  # the engine and the lane number
    lab: str = ""
    phase: str = "waiting"
    since: float = field(default_factory=time.monotonic)


class Progress:
    def __init__(self, console: Console | None, total: int, lanes: list[str]) -> None:
        self.console = console
        self.total = total
        self.done: list[Cell] = []
        self.running = 0
        self.started = time.monotonic()
        self.lanes = [Lane(label) for label in lanes]
        self._lock = threading.Lock()
        self._live: Live | None = None

    # --- updates (any thread) ------------------------------------------------

    def phase(self, lane: int, lab: str, text: str, running: int | None = None) -> None:
        with self._lock:
            current = self.lanes[lane]
            current.lab, current.phase, current.since = lab, text, time.monotonic()
            if running is not None:
                self.running = max(0, self.running + running)
        if self._live is None and self.console is not None:
            self._line(f"{lab or current.label}: {text}")

    def cell_done(self, cell: Cell, checked: bool = True) -> None:
        """A cell decided; ``checked``: it was counted as running (not skipped, not a failed bring-up)."""
        with self._lock:
            self.done.append(cell)
            if checked:
                self.running = max(0, self.running - 1)
        if self._live is None and self.console is not None:
            mark = "as expected" if cell.passed else ("skipped" if cell.observed == "skipped" else "MISMATCH")
            self._line(f"{cell.profile} · {cell.protocol}: {cell.observed} ({mark}) "
                       f"[{len(self.done)}/{self.total}]")

    def say(self, text: str) -> None:
        if self.console is None:
            return
        if self._live is not None:
            self._live.console.print(f"[dim]{escape(text)}[/dim]")
        else:
            self._line(text)

    # --- display -------------------------------------------------------------

    def _line(self, text: str) -> None:
        assert self.console is not None
        self.console.print(f"[dim][{time.monotonic() - self.started:6.1f}s][/dim] {escape(text)}", highlight=False)

    def headline(self) -> str:
        done = len(self.done)
        bad = sum(1 for c in self.done if not c.passed and c.observed != "skipped")
        left = self.total - done - self.running
        text = (f"matrix: {done}/{self.total} cells done, {self.running} running, {left} left"
                f" · {time.monotonic() - self.started:.0f}s")
        return text + (f" · {bad} not as expected" if bad else "")

    def __rich__(self) -> Group:
        table = Table(box=None, show_header=False, padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="ellipsis", no_wrap=True)
        table.add_column(style="dim", justify="right", no_wrap=True)
        now = time.monotonic()
        with self._lock:
            for lane in self.lanes:
                table.add_row(lane.label, lane.lab or "-", lane.phase, f"{now - lane.since:.0f}s")
            headline = self.headline()
        return Group(Text(headline, style="bold"), table)

    def __enter__(self) -> Progress:
        if self.console is not None and self.console.is_terminal:
            self._live = Live(self, console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
