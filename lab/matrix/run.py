"""``vpnlab matrix``: every selected protocol through every selected router profile, one lab per profile.

The order of things: the selection is resolved and every lab's topology validated (bad input
is one error, nothing created); images are built on the host engine; the runtime is chosen
like ``vpnlab run``'s (auto: the host engine when its kernel runs every selected protocol,
else User-Mode Linux); then ``jobs`` lanes take labs from a queue, each lane on its engine
(UML: a guest of its own per lane, since a guest has one CPU; a host engine: lanes share it).
Every lab is removed before its lane takes the next, and on Ctrl-C every lab started is
removed and every guest booted is stopped before the interrupt goes on.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from lab.errors import VpnlabError
from lab.matrix.cells import LabJob, Selection, lab_jobs, lab_topology, layout, profile_info, select, split_job
from lab.matrix.labs import Cancelled, Engine, LabOutcome, run_lab
from lab.matrix.progress import Progress
from lab.matrix.result import Cell, MatrixResult

if TYPE_CHECKING:  # pragma: no cover
    import docker
    from rich.console import Console

    from lab.runtime.base import Runtime

HOST_JOBS = 4  # labs at once on one host engine: bring-up and checks wait on daemons more than on CPU
GUEST_LOAD_HINT = "about 70 s the first time per guest; kept on its disk"


@dataclass
class MatrixOptions:
    profiles: str | None = None
    protocols: str | None = None
    jobs: int | None = None
    shard: str | None = None
    runtime: str = "auto"
    engines: list[str] = field(default_factory=list)


def default_jobs(guests: bool, engines: int) -> int:
    """UML: one guest per core (a guest runs on one CPU); host engines: a few labs each."""
    return max(1, os.cpu_count() or 1) if guests else HOST_JOBS * max(1, engines)


def engine_client(ref: str) -> docker.DockerClient:
    """An --engine value: a DOCKER_HOST-style URL, or a Docker context's name."""
    from lab.runtime.engine import Endpoint, connect, context_endpoint

    endpoint = Endpoint(ref) if "://" in ref else context_endpoint(ref)
    return connect(endpoint=endpoint)


def _opener(sync_from: docker.DockerClient | None):
    """How an engine is made ready: open the runtime (boot, load images), or sync images into an --engine."""

    def open_runtime(runtime: Runtime, phase) -> None:
        def progress(text: str) -> None:
            if text.startswith("loading"):
                text += f" ({GUEST_LOAD_HINT})"
            phase(text)

        runtime.open(progress)
        if sync_from is not None:
            from lab.runtime.image_sync import sync_images

            t0 = time.monotonic()
            loaded, _ = sync_images(sync_from, runtime.client, lambda t: phase(f"{t} (images stream from the host)"))
            if loaded:
                runtime.timings["image_load"] = round(time.monotonic() - t0, 2)

    return open_runtime


@dataclass
class Pool:
    """Engines that run some of the labs: the host's (or --engine ones), or UML guests (one per lane)."""

    name: str
    engines: list[Engine]
    lanes: int
    protocols: set[str]  # the protocols its labs carry

    def lane_engines(self) -> list[Engine]:
        return [self.engines[i % len(self.engines)] for i in range(self.lanes)]


def plan_pools(options: MatrixOptions, selection: Selection, host_session) -> tuple[list[Pool], str, bool]:
    """The pools of engines labs run on, the run's runtime name, and whether cells the host kernel
    cannot run are to be skipped (no runtime here runs them).

    auto, when the host kernel lacks what some protocols need and a full-kernel runtime is
    available, splits each profile in two labs: the protocols the host kernel runs on the host
    engine (fast, both cores), the rest in UML guests. Both labs have the same router profile;
    measured on this machine it is well over twice as fast as every cell in a one-CPU guest.
    """
    from lab.runtime.host import HostRuntime
    from lab.runtime.registry import choose_runtime

    host = host_session.host
    everything = set(selection.protocols)
    if options.engines:
        if options.runtime not in ("auto", HostRuntime.name):
            raise VpnlabError(f"--engine runs labs on Docker engines: it cannot go with --runtime {options.runtime}",
                              hint="drop --runtime, or drop --engine")
        engines = []
        for ref in dict.fromkeys(options.engines):
            client = engine_client(ref)  # unreachable: one error (exit 2) before anything is created
            engines.append(Engine(ref, HostRuntime(f"requested: the engine {ref}", client), host_session, _opener(host)))
        lanes = options.jobs or default_jobs(False, len(engines))
        return [Pool("engines", engines, lanes, everything)], HostRuntime.name, True

    def needs() -> dict[str, list[str]]:
        return {p: m for p, m in host_session.capabilities(host).missing(selection.protocols).items() if m}

    chosen = choose_runtime(options.runtime, needs, host=host)
    if not chosen.full_kernel:
        pool = Pool(chosen.name, [Engine(chosen.name, chosen, host_session, _opener(None))],
                    options.jobs or default_jobs(False, 1), everything)
        return [pool], chosen.name, True
    kind = type(chosen)
    guests = options.jobs or default_jobs(True, 1)
    uml = Pool(kind.name, [Engine(f"{kind.name} {i + 1}", chosen if i == 0 else kind(chosen.reason, host),
                                  host_session, _opener(None)) for i in range(guests)], guests, everything)
    if options.runtime != "auto":
        return [uml], kind.name, False
    host_runs = {p for p in selection.protocols if not needs().get(p)}
    if not host_runs:
        return [uml], kind.name, False
    uml.protocols = everything - host_runs
    ordered = [p for p in selection.protocols if p in host_runs]
    on_host = HostRuntime(f"auto: {', '.join(ordered)} on the host engine (its kernel runs them)", host)
    host_pool = Pool(HostRuntime.name, [Engine(HostRuntime.name, on_host, host_session, _opener(None))],
                     HOST_LANES_BESIDE_GUESTS, host_runs)
    return [host_pool, uml], f"{HostRuntime.name}+{kind.name}", False


HOST_LANES_BESIDE_GUESTS = 2  # the guests keep the cores busy; host labs are light


def mark_skips(jobs: list[LabJob], host_session, runtime_reason: str) -> None:
    """Cells the host kernel cannot run, when no runtime here can: skipped with the reason."""
    capabilities = host_session.capabilities(host_session.host)
    for job in jobs:
        for protocol in job.protocols:
            support = capabilities.support(protocol)
            if support.runnable is False:
                job.skipped[protocol] = (f"kernel {capabilities.release} lacks " + "; ".join(support.missing)
                                         + f" ({runtime_reason})")


def run_matrix(options: MatrixOptions, console: Console | None = None) -> MatrixResult:
    from lab.orchestrate import new_session

    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.monotonic()
    if options.jobs is not None and options.jobs < 1:
        raise VpnlabError(f"--jobs {options.jobs}: give 1 or more")
    selection = select(options.profiles, options.protocols, options.shard)
    whole = lab_jobs(selection)
    for job in whole:
        lab_topology(job)  # a profile whose router section is invalid stops here, before any engine is touched
    drawing = layout(selection)

    host_session = new_session(console=console)
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    host_session.ensure_images()  # prints each build step
    seconds["images"] = round(time.monotonic() - t0, 2)
    pools, runtime_name, host_kernel_only = plan_pools(options, selection, host_session)
    if host_kernel_only and pools[0].name != "engines":
        mark_skips(whole, host_session, pools[0].engines[0].runtime.reason)
    taken = {job.name for job in whole}
    jobs = [part for job in whole for part in split_job(job, [(p.name, p.protocols) for p in pools], taken)]
    queues: dict[str, queue.Queue[LabJob]] = {p.name: queue.Queue() for p in pools}
    for job in sorted(jobs, key=lambda j: -len(j.runnable)):  # the longest labs first: the last lane ends sooner
        queues[job.pool].put(job)
    lanes: list[tuple[Pool, Engine]] = []
    for pool in pools:
        count = max(0, min(pool.lanes, queues[pool.name].qsize()))
        if count == 0:  # a shard whose cells need none of this pool's labs
            continue
        pool.engines = pool.engines[:count] if len(pool.engines) > count else pool.engines
        lanes += [(pool, engine) for engine in pool.lane_engines()[:count]]
    engines = list(dict.fromkeys(engine for _, engine in lanes))
    shared = {engine: sum(1 for _, e in lanes if e is engine) for engine in engines}

    total = sum(len(job.protocols) for job in jobs)
    outcomes: list[LabOutcome] = []
    failures: list[BaseException] = []
    labs_started: list[object] = []
    cancelled = threading.Event()
    lock = threading.Lock()
    labels = []
    for index, (pool, engine) in enumerate(lanes):
        labels.append(f"{engine.label} #{index + 1}" if shared[engine] > 1 else engine.label)
    progress = Progress(console, total, labels)

    def lane(index: int) -> None:
        pool, engine = lanes[index]
        try:
            session = engine.open(lambda text, running=None: progress.phase(index, "", text, running))
            while not cancelled.is_set():
                try:
                    job = queues[pool.name].get_nowait()
                except queue.Empty:
                    break

                def phase(text: str, running: int | None = None, _job: LabJob = job) -> None:
                    progress.phase(index, _job.name, text, running)

                outcome = run_lab(session, job, phase, progress.cell_done, cancelled,
                                  lambda lab: labs_started.append(lab))
                with lock:
                    outcomes.append(outcome)
            progress.phase(index, "", "done")
        except Cancelled:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread after clean-up
            with lock:
                failures.append(exc)
            cancelled.set()

    threads = [threading.Thread(target=lane, args=(i,), name=f"matrix-lane-{i}", daemon=True)
               for i in range(len(lanes))]
    try:
        with progress:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
    except BaseException:
        cancelled.set()
        progress.say("interrupted: removing every lab this run started")
        _remove(labs_started)
        for thread in threads:
            thread.join(15)
        _remove(labs_started)
        _close(engines)
        raise
    _close(engines)
    if failures:
        raise failures[0]

    for engine in engines:
        for phase_name, value in engine.opened_seconds.items():
            key = "images" if phase_name == "image_load" else phase_name
            seconds[key] = round(seconds.get(key, 0.0) + value, 2)
    for outcome in outcomes:
        for phase_name, value in outcome.seconds.items():
            seconds[phase_name] = round(seconds.get(phase_name, 0.0) + value, 2)
    seconds["total"] = round(time.monotonic() - started, 2)
    return assemble(selection, outcomes, engines, runtime_name, drawing, seconds, started_at)


def _remove(labs: list[object]) -> None:
    for lab in list(labs):
        try:
            lab.down()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - an engine gone mid-interrupt: nothing left to remove there
            pass


def _close(engines: list[Engine]) -> None:
    for engine in engines:
        try:
            engine.close()
        except Exception:  # noqa: BLE001 - one guest failing to stop must not keep the others running
            pass


def assemble(selection: Selection, outcomes: list[LabOutcome], engines: list[Engine], runtime_name: str,
             drawing, seconds: dict[str, float], started_at: str) -> MatrixResult:
    nat = {o.job.profile.name: o.nat for o in outcomes if o.nat is not None}
    profiles = []
    for profile in selection.profiles:
        info = profile_info(profile)
        info.nat = nat.get(profile.name)
        profiles.append(info)
    rank = {pair: i for i, pair in enumerate((p.name, proto) for p in selection.profiles for proto in selection.protocols)}
    cells: list[Cell] = sorted((c for o in outcomes for c in o.cells), key=lambda c: rank.get(c.key, len(rank)))
    opened = [e for e in engines if e.session is not None] or engines
    kernels = list(dict.fromkeys(e.kernel for e in opened))
    reasons = list(dict.fromkeys(e.runtime.reason for e in opened))
    return MatrixResult(
        runtime=runtime_name,
        runtime_reason="; ".join(reasons),
        kernel=", ".join(k for k in kernels if k) or "unknown",
        started=started_at,
        profiles=profiles,
        protocols=list(selection.protocols),
        lab=drawing,
        cells=cells,
        seconds=seconds,
        shard=selection.shard,
    )

