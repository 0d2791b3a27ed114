"""One matrix lab on one engine: bring up, check every tunnel, measure the NAT, tear down, whatever happens.

A Worker is one lane of ``--jobs``: it runs one lab at a time on its engine (a UML guest
of its own, or a share of a host engine). ``run_lab`` turns a LabJob into cells; a lab that
fails to come up gives 'error' cells naming the failure instead of stopping the matrix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lab.check.results import TunnelResult
from lab.errors import VpnlabError
from lab.matrix.cells import LabJob, lab_topology
from lab.matrix.result import Cell, NatBehaviour
from lab.runtime.lab import parallel

if TYPE_CHECKING:  # pragma: no cover
    from lab.orchestrate import Session
    from lab.runtime.base import Runtime

Phase = Callable[..., None]  # (text, cells now running) tells the progress display what a lab is doing now


class Cancelled(Exception):
    """The run was interrupted: stop between steps (the lab is still torn down)."""


@dataclass(eq=False)  # one object per engine: hashed by identity
class Engine:
    """An engine labs run on: its runtime, opened once (a guest booted, images loaded) by the first worker."""

    label: str
    runtime: Runtime
    host_session: Session
    opener: Callable[[Runtime, Phase], None]
    session: Session | None = None
    kernel: str = ""
    opened_seconds: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, phase: Phase) -> Session:
        with self._lock:
            if self.session is None:
                from lab.orchestrate import Session

                self.opener(self.runtime, phase)
                session = Session(self.host_session.host, console=None, runtime=self.runtime)
                phase("probing the engine's kernel")
                self.kernel = session.capabilities().release  # probed once here, not by several labs at once
                self.opened_seconds = dict(self.runtime.timings)
                self.session = session
            return self.session

    def close(self) -> None:
        self.runtime.close()


@dataclass
class LabOutcome:
    job: LabJob
    cells: list[Cell]
    nat: NatBehaviour | None
    seconds: dict[str, float]
    engine: str


def skipped_cell(job: LabJob, protocol: str) -> Cell:
    from lab.matrix.cells import ALONE, CLIENT, MAIN_SERVER, SECOND_SERVER

    server = SECOND_SERVER if protocol in ALONE else MAIN_SERVER
    return Cell(job.profile.name, CLIENT, server, protocol, job.profile.expect[protocol], "skipped",
                job.skipped[protocol], 0.0, {}, job.profile.reasons.get(protocol, ""))


def error_cells(job: LabJob, error: BaseException) -> list[Cell]:
    from lab.matrix.cells import ALONE, CLIENT, MAIN_SERVER, SECOND_SERVER

    reason = f"the lab could not be brought up: {error}"
    return [
        Cell(job.profile.name, CLIENT, SECOND_SERVER if p in ALONE else MAIN_SERVER, p, job.profile.expect[p],
             "error", reason, 0.0, {}, job.profile.reasons.get(p, ""))
        for p in job.runnable
    ]


def measure(lab: object, plan: object) -> NatBehaviour | None:
    """The profile's NAT behaviour, when this vpnlab has the probe (lab.natprobe)."""
    try:
        from lab.natprobe import measure_nat
    except ImportError:
        return None
    try:
        return measure_nat(lab, plan)  # type: ignore[arg-type]
    except VpnlabError as exc:
        return NatBehaviour("unknown", "unknown", f"the NAT probe failed: {exc}", [str(exc)])


def run_lab(
    session: Session,
    job: LabJob,
    phase: Phase,
    cell_done: Callable[[Cell, bool], None],
    cancelled: threading.Event,
    started_labs: Callable[[object], None],
) -> LabOutcome:
    """Run one profile's lab on ``session``'s engine; the lab is removed before this returns."""
    from lab.orchestrate import check_plan, plan_for, up

    seconds: dict[str, float] = {}
    cells = [skipped_cell(job, p) for p in job.protocols if p in job.skipped]
    for cell in cells:
        cell_done(cell, False)
    nat = None
    lab = None
    if not job.runnable:
        return LabOutcome(job, cells, nat, seconds, "")
    topology = lab_topology(job)
    plan = plan_for(session, topology)
    try:
        if cancelled.is_set():
            raise Cancelled()
        t0 = time.monotonic()
        phase("bringing up")
        try:
            # An interrupted 'up' removes what it made itself (and owes it: lab.runtime.owed); a lab
            # of this name that another process holds is refused here and never touched.
            lab = up(session, plan, source="vpnlab matrix", mode="run", progress=lambda s: phase(f"up: {s}"))
            started_labs(lab)  # claimed by this run: removed on Ctrl-C too
        except VpnlabError as exc:
            failed = error_cells(job, exc)
            for cell in failed:
                cell_done(cell, False)
            return LabOutcome(job, cells + failed, nat, seconds, session.runtime.where if session.runtime else "")
        seconds["up"] = round(time.monotonic() - t0, 2)
        if cancelled.is_set():
            raise Cancelled()

        t0 = time.monotonic()
        phase(f"checking {len(job.runnable)} tunnel(s)", len(job.runnable))
        index = {ctx.tunnel.protocol: i for i, ctx in enumerate(plan.tunnels)}

        def check_one(protocol: str) -> Cell:
            if cancelled.is_set():
                raise Cancelled()
            result: TunnelResult = check_plan(session, lab, plan, only=[index[protocol]])[0]
            cell = Cell.from_tunnel(job.profile.name, result, job.profile.reasons.get(protocol, ""))
            cell_done(cell, True)
            return cell

        cells += parallel(check_one, job.runnable, limit=session.concurrency)
        seconds["check"] = round(time.monotonic() - t0, 2)

        if getattr(plan.topology, "nat_probe", False):  # one lab per profile carries the probe
            t0 = time.monotonic()
            phase("measuring NAT behaviour (RFC 5780)")
            nat = measure(lab, plan)
            seconds["nat"] = round(time.monotonic() - t0, 2)
    finally:
        if lab is not None:
            t0 = time.monotonic()
            phase("tearing down")
            lab.down()
            seconds["down"] = round(time.monotonic() - t0, 2)
    order = {p: i for i, p in enumerate(job.protocols)}
    cells.sort(key=lambda c: order[c.protocol])
    return LabOutcome(job, cells, nat, seconds, session.runtime.where if session.runtime else "")
