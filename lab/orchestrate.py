"""The user-level operations, shared by the CLI and the pytest plugin.

``up`` makes a lab (building missing images first), ``check`` decides every
tunnel, ``run`` does both and always tears down unless asked to keep. Where
the lab runs (the host's engine or a User-Mode Linux guest's) is decided
once per session by ``open_runtime``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import docker
from rich.console import Console

from lab.capabilities import Capabilities
from lab.check.run import check_tunnels, named
from lab.credentials import LabSecrets
from lab.display import shown
from lab.images import ensure_images, image_tag, missing_images
from lab.kernel import probe_engine_kernel
from lab.matrix.result import NatBehaviour
from lab.natprobe import measure_nat
from lab.plan import LabPlan, plan_lab
from lab.protocols.base import Environment
from lab.runtime.owed import owe, settle
from lab.check.results import RunResult, TunnelResult
from lab.runtime.engine import connect
from lab.runtime.base import Runtime
from lab.runtime.lab import DockerLab, TeardownError
from lab.runtime.lab_lock import claim, release, this_owner
from lab.runtime.registry import AUTO, choose_runtime, find_lab
from lab.steps.results import StepResult
from lab.steps.runner import StepRunner
from lab.topology.model import Topology


@dataclass
class Session:
    """The engines one command uses: the host's (images are built there) and the chosen runtime's,
    with what each engine's kernel offers (probed once per engine)."""

    host: docker.DockerClient
    console: Console | None = None
    runtime: Runtime | None = None
    _capabilities: dict[int, Capabilities] = field(default_factory=dict, init=False)
    _images_ready: bool = field(default=False, init=False)

    @property
    def client(self) -> docker.DockerClient:
        return self.runtime.client if self.runtime else self.host

    @property
    def concurrency(self) -> int:
        return self.runtime.concurrency if self.runtime else 8

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"[dim]{shown(text)}[/dim]")  # names and paths: shown as they read

    def ensure_images(self) -> None:
        if self._images_ready:
            return
        if missing_images(self.host):
            self.say("building missing images")
        ensure_images(self.host, console=self.console)
        self._images_ready = True

    def capabilities(self, client: docker.DockerClient | None = None) -> Capabilities:
        """What the kernel under ``client``'s engine (default: the runtime's) offers; probed once."""
        client = client or self.client
        if id(client) not in self._capabilities:
            key = self.runtime.probe_key() if self.runtime is not None and client is self.client else None
            self._capabilities[id(client)] = Capabilities(probe_engine_kernel(client, image_tag("client"), key=key))
        return self._capabilities[id(client)]

    def environment(self) -> Environment:
        """What configs adapt to: the runtime's kernel, and how slow the runtime is (its time scale)."""
        environment = self.capabilities().environment
        if self.runtime is None:
            return environment
        return replace(environment, time_scale=self.runtime.time_scale, runtime=self.runtime.name)

    def missing_on_host(self, topology: Topology) -> dict[str, list[str]]:
        """Per protocol of the topology (and for its link conditions), what the host's kernel lacks."""
        return self.capabilities(self.host).needs(topology)

    def open_runtime(self, choice: str, topology: Topology | None = None) -> Runtime:
        """Choose (see lab.runtime.registry.choose_runtime) and open the runtime for this session."""
        if self.runtime is not None:
            return self.runtime
        self.ensure_images()

        def needs() -> dict[str, list[str]]:
            return self.missing_on_host(topology) if topology else {}

        # Kept on the session before it opens: a failure half-way (a guest booted, images
        # not loaded) is then stopped by close(), which every caller runs.
        self.runtime = choose_runtime(choice, needs, host=self.host)
        owe(self._debt, self.close)  # paid after the labs on it (lab.runtime.owed: last owed, first paid)
        self.runtime.open(self.say)
        return self.runtime

    def close(self, keep_guest: bool = False) -> None:
        if self.runtime is not None:
            self.runtime.close(keep=keep_guest)
            self.runtime = None
        settle(self._debt)

    @property
    def _debt(self) -> str:
        return f"session {id(self)}"


def new_session(console: Console | None = None) -> Session:
    return Session(connect(), console=console)


def plan_for(session: Session, topology: Topology) -> LabPlan:
    """The lab's one plan, for the kernel under the session's runtime, with fresh secrets."""
    return plan_lab(topology, session.environment(), LabSecrets(topology.name))


def up(session: Session, plan: LabPlan, *, source: str, mode: str = "up",
       progress: Callable[[str], None] | None = None) -> DockerLab:
    """Bring ``plan``'s lab up, holding its name on this engine (lab.runtime.lab_lock) first.

    ``mode`` 'run': the name stays held until ``lab.down()``; 'up': the lab is kept (its 'up'
    label guards it) and the name is let go once it is up.
    Raises:
        LabInUse: another process runs a lab of this name, or (for 'run') 'vpnlab up' keeps one.
    """
    lab = DockerLab(session.client, plan.name, session.concurrency)
    owner = this_owner(mode)
    claim(lab.client, lab.name)
    try:
        if lab.prepare(plan.topology, owner):
            session.say(f"lab '{plan.name}' is already up")
        else:
            lab.up(plan, owner=owner, source=source, progress=progress or session.say)
    except BaseException:
        release(lab.client, lab.name)
        raise
    if mode == "up":
        release(lab.client, lab.name)
    return lab


def check_plan(session: Session, lab: DockerLab, plan: LabPlan, only: list[int] | None = None) -> list[TunnelResult]:
    """Check a lab's tunnels (all, or those in ``only``) on the session's runtime."""
    return check_tunnels(lab, plan, session.capabilities(), only=only, concurrency=session.concurrency)


def check_and_probe(
    session: Session, lab: DockerLab, plan: LabPlan, only: list[int] | None = None
) -> tuple[list[TunnelResult], NatBehaviour | None]:
    """The tunnels' results (all, or those in ``only``) and, with ``nat_probe: true``, the router's
    NAT behaviour: the probe (a few seconds, its own node and ports) runs beside the tunnel checks."""
    with ThreadPoolExecutor(max_workers=1) as probe:
        nat = probe.submit(measure_nat, lab, plan) if plan.topology.nat_probe else None
        results = check_plan(session, lab, plan, only)
        return results, _measured(nat) if nat else None


def _measured(nat: Future[NatBehaviour]) -> NatBehaviour:
    """The probe's answer; a probe that raised is an unknown behaviour saying why (the tunnels' results stay)."""
    try:
        return nat.result()
    except Exception as exc:  # noqa: BLE001 - named in the summary
        return NatBehaviour("unknown", "unknown", f"the probe failed: {named(exc)}")


def run(session: Session, topology: Topology, *, source: str, runtime: str = "auto", keep: bool = False,
        captures: Path | None = None) -> RunResult:
    """``captures``: the folder of the capture steps' pcaps (default: the current one)."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    lab = None
    try:
        chosen = session.open_runtime(runtime, topology)
        plan = plan_for(session, topology)
        timings.update(chosen.timings)
        timings["prepare"] = round(time.monotonic() - started, 2)
        t0 = time.monotonic()
        lab = up(session, plan, source=source, mode="run" if not keep else "up")
        timings["up"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        if topology.steps:
            results, nat, steps = check_with_steps(session, lab, plan, captures)
        else:
            (results, nat), steps = check_and_probe(session, lab, plan), None
        result = RunResult(topology.name, chosen.name, chosen.reason, chosen.kernel, results, nat=nat, steps=steps)
        timings["check"] = round(time.monotonic() - t0, 2)
        if any(r.observed == "error" for r in results) and (gone := chosen.failure()) is not None:
            raise gone  # the checks' errors came from an engine that stopped (a guest killed)
    except BaseException as exc:
        # Asked before the teardown closes the runtime: an engine that stopped under the run (a guest
        # killed) is the one error, not the engine calls that failed because of it.
        gone = None if session.runtime is None or not isinstance(exc, Exception) else session.runtime.failure()
        left = _teardown(session, lab, keep, timings)
        if gone is not None and gone is not exc:
            raise gone from None
        if left is not None:
            session.say(str(left))  # the error that stopped the run is the one raised
        raise
    # Results are kept whatever the teardown does: it is reported with them (and exits non-zero).
    left = _teardown(session, lab, keep, timings)
    result.teardown = str(left) if left is not None else None
    result.seconds = timings
    return result


def check_with_steps(session: Session, lab: DockerLab, plan: LabPlan,
                     captures: Path | None = None) -> tuple[list[TunnelResult], NatBehaviour | None, list[StepResult]]:
    """A topology with steps: the tunnels no check step names are checked first (as without
    steps, beside the NAT probe), then the steps run in order and start the others."""
    runner = StepRunner(lab, plan, session.capabilities(), session.concurrency, say=session.say, captures=captures)
    first = runner.unnamed_tunnels()
    results, nat = check_and_probe(session, lab, plan, only=first)
    runner.already_started(dict(zip(first, results)))
    steps = runner.run()
    return runner.tunnel_results(), nat, steps


def _teardown(session: Session, lab: DockerLab | None, keep: bool, timings: dict[str, float]) -> Exception | None:
    """Remove the lab (unless kept) and close the session, both always; what could not be removed."""
    left = None
    try:
        if lab is not None and not keep:
            t0 = time.monotonic()
            try:
                lab.down()
            except TeardownError as exc:
                left = exc
            except Exception as exc:  # noqa: BLE001 - an engine gone mid-teardown: reported, the guest still closed
                left = TeardownError(0, [f"lab {lab.name}: {type(exc).__name__}: {exc}"])
            timings["down"] = round(time.monotonic() - t0, 2)
    finally:
        session.close(keep_guest=keep)
    return left


def check(session: Session, name: str, where: str = AUTO) -> RunResult:
    """Check a running lab again, from a plan made from the topology kept in its router."""
    runtime, lab = find_lab(session.host, name, where)
    on_engine = Session(session.host, session.console, runtime)
    topology = lab.topology()
    plan = plan_lab(topology, on_engine.environment())  # checking renders no secrets
    results, nat = check_and_probe(on_engine, lab, plan)
    return RunResult(name, runtime.name, runtime.reason, runtime.kernel, results, nat=nat)
