"""The user-level operations, shared by the CLI and the pytest plugin.

``up`` makes a lab (building missing images first), ``check`` decides every
tunnel, ``run`` does both and always tears down unless asked to keep. Where
the lab runs (the host's engine or a User-Mode Linux guest's) is decided
once per session by ``open_runtime``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
from rich.console import Console

from lab.check import check_tunnels
from lab.credentials import LabSecrets
from lab.errors import LabNotFound
from lab.images import ensure_images, image_tag, missing_images
from lab.kernel import KernelFeatures, ProtocolSupport, check_protocol, probe_engine_kernel
from lab.nodes import build_lab
from lab.protocols.base import Environment
from lab.results import RunResult
from lab.runtime.engine import connect
from lab.runtime.image_sync import sync_images
from lab.runtime.lab import DockerLab, holds_labs, this_owner
from lab.runtime.select import Runtime, auto_reason, host_runtime, uml_runtime
from lab.runtime.uml import UmlGuest, running_slots, uml_available
from lab.topology.model import Topology


@dataclass
class Session:
    """The host engine (images are built there), the chosen runtime and what its kernel can do."""

    host: docker.DockerClient
    console: Console | None = None
    runtime: Runtime | None = None
    _features: dict[int, KernelFeatures] = field(default_factory=dict, init=False)
    _images_ready: bool = field(default=False, init=False)

    @property
    def client(self) -> docker.DockerClient:
        return self.runtime.client if self.runtime else self.host

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"[dim]{text}[/dim]")

    def ensure_images(self) -> None:
        if self._images_ready:
            return
        if missing_images(self.host):
            self.say("building missing images")
        ensure_images(self.host, console=self.console)
        self._images_ready = True

    def features(self, client: docker.DockerClient | None = None) -> KernelFeatures:
        client = client or self.client
        if id(client) not in self._features:
            self._features[id(client)] = probe_engine_kernel(client, image_tag("client"))
        return self._features[id(client)]

    def environment(self) -> Environment:
        features = self.features()
        return Environment(
            ppp=features.available("ppp") is True,
            esp=features.available("esp") is True,
            wireguard=features.available("wireguard") is True,
        )

    def support(
        self, topology: Topology, client: docker.DockerClient | None = None
    ) -> dict[str, tuple[str, ProtocolSupport]]:
        """Per protocol of the topology: (kernel release, what this engine's kernel offers it)."""
        features = self.features(client)
        return {p: (features.release, check_protocol(p, features)) for p in {t.protocol for t in topology.tunnels}}

    def missing_features(self, topology: Topology, client: docker.DockerClient | None = None) -> dict[str, list[str]]:
        return {p: support.missing for p, (_, support) in self.support(topology, client).items()}

    def skips(self, topology: Topology) -> dict[int, str]:
        """Tunnels this runtime's kernel cannot run, with the missing feature named."""
        support = self.support(topology)
        return {
            i: f"kernel {support[t.protocol][0]} lacks " + "; ".join(support[t.protocol][1].missing)
            for i, t in enumerate(topology.tunnels)
            if support[t.protocol][1].runnable is False
        }

    def check(self, lab: DockerLab, topology: Topology, only: list[int] | None = None) -> list:
        """Check a lab's tunnels on this session's runtime, with its kernel's skips and notes."""
        return check_tunnels(
            lab,
            topology,
            self.skips(topology),
            only=only,
            environment=self.environment(),
            notes=self.notes(topology),
            concurrency=self.runtime.concurrency if self.runtime else 8,
        )

    def notes(self, topology: Topology) -> dict[str, str]:
        """Per protocol: what this kernel lacks that is recommended (said in every result of it)."""
        return {
            p: "; ".join(f"kernel {release} lacks {m}" for m in support.recommended_missing)
            for p, (release, support) in self.support(topology).items()
            if support.recommended_missing
        }

    def open_runtime(self, choice: str, topology: Topology | None = None) -> Runtime:
        """Choose and start the runtime (docker, uml or auto) for this session."""
        if self.runtime is not None:
            return self.runtime
        self.ensure_images()
        if choice == "docker":
            self.runtime = host_runtime(self.host, "requested: the host's Docker engine")
        elif choice == "uml":
            self.runtime = uml_runtime("requested: a User-Mode Linux guest's engine", self.say)
        else:
            needs_full, why = auto_reason(self.missing_features(topology, self.host) if topology else {})
            usable, uml_why = uml_available()
            if needs_full and usable:
                self.runtime = uml_runtime(f"auto: {why}", self.say)
            elif needs_full:
                self.runtime = host_runtime(self.host, f"auto: {why}; no UML runtime ({uml_why})")
            else:
                self.runtime = host_runtime(self.host, f"auto: {why}")
        if self.runtime.guest is not None:
            loaded, seconds = sync_images(self.host, self.runtime.client, self.say)
            self.runtime.timings["image_load"] = round(seconds, 2)
        return self.runtime

    def close(self, keep_guest: bool = False) -> None:
        if self.runtime is not None:
            self.runtime.close(keep_guest=keep_guest)
            self.runtime = None


def new_session(console: Console | None = None) -> Session:
    return Session(connect(), console=console)


def up(session: Session, topology: Topology, *, source: str, mode: str = "up",
       progress: Callable[[str], None] | None = None) -> DockerLab:
    lab = DockerLab(session.client, topology.name, session.runtime.concurrency if session.runtime else 8)
    owner = this_owner(mode)
    if lab.prepare(topology, owner):
        session.say(f"lab '{topology.name}' is already up")
        return lab
    spec = build_lab(topology, LabSecrets(topology.name), session.environment())
    lab.up(spec, owner=owner, source=source, progress=progress or session.say)
    return lab


def run(session: Session, topology: Topology, *, source: str, runtime: str = "auto", keep: bool = False) -> RunResult:
    timings: dict[str, float] = {}
    started = time.monotonic()
    lab = None
    try:
        chosen = session.open_runtime(runtime, topology)
        skips = session.skips(topology)
        timings.update(chosen.timings)
        timings["prepare"] = round(time.monotonic() - started, 2)
        t0 = time.monotonic()
        lab = up(session, topology, source=source, mode="run" if not keep else "up")
        timings["up"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        results = session.check(lab, topology)
        timings["check"] = round(time.monotonic() - t0, 2)
        result = RunResult(topology.name, chosen.kind, chosen.reason, chosen.kernel, results)
    finally:
        if lab is not None and not keep:
            t0 = time.monotonic()
            lab.down()
            timings["down"] = round(time.monotonic() - t0, 2)
        session.close(keep_guest=keep)
    result.seconds = timings
    return result


@dataclass
class Engine:
    """An engine that may hold labs: the host's, or a running guest's."""

    kind: str
    client: docker.DockerClient
    guest: UmlGuest | None = None


def engines(session: Session, where: str = "auto") -> list[Engine]:
    """The engines that may hold labs: 'docker' the host's, 'uml' running guests', 'auto' both."""
    found = [Engine("docker", session.host)] if where in ("auto", "docker") else []
    for slot in running_slots() if where in ("auto", "uml") else []:
        guest = UmlGuest(slot)
        if guest.engine_answers():
            found.append(Engine("uml", guest.client(), guest))
    return found


def find_lab(session: Session, name: str, where: str = "auto") -> tuple[Engine, DockerLab]:
    for engine in engines(session, where):
        lab = DockerLab(engine.client, name)
        if lab.exists():
            return engine, lab
    raise LabNotFound(name)


def check(session: Session, name: str, where: str = "auto") -> RunResult:
    engine, lab = find_lab(session, name, where)
    runtime = Runtime(engine.kind, engine.client, "where the lab runs")
    on_engine = Session(session.host, session.console, runtime)
    results = on_engine.check(lab, lab.topology())
    return RunResult(name, runtime.kind, runtime.reason, runtime.kernel, results)


def stop_idle_guests(session: Session) -> int:
    """Stop guests that hold no lab; returns how many were stopped."""
    stopped = 0
    for engine in engines(session):
        guest = engine.guest
        if guest is None or holds_labs(engine.client):
            continue
        if guest.try_lock():  # not in use by another vpnlab process
            guest.stop()
            guest.release()
            stopped += 1
    return stopped
