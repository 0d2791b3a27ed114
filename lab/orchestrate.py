"""The user-level operations, shared by the CLI and the pytest plugin.

``up`` makes a lab (building missing images first), ``check`` decides every
tunnel, ``run`` does both and always tears down unless asked to keep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
from rich.console import Console

from lab.check import check_tunnels
from lab.credentials import LabSecrets
from lab.images import ensure_images, image_tag, missing_images
from lab.kernel import KernelFeatures, check_protocol, probe_engine_kernel
from lab.nodes import build_lab
from lab.results import RunResult
from lab.runtime.engine import engine_kernel
from lab.runtime.lab import DockerLab, this_owner
from lab.topology.model import Topology

RUNTIME = "docker"


@dataclass
class Session:
    """One engine and what was learnt about its kernel, reused across labs."""

    client: docker.DockerClient
    console: Console | None = None
    _features: KernelFeatures | None = field(default=None, init=False)

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"[dim]{text}[/dim]")

    def ensure_images(self) -> None:
        if missing_images(self.client):
            self.say("building missing images")
        ensure_images(self.client, console=self.console)

    def features(self) -> KernelFeatures:
        if self._features is None:
            self._features = probe_engine_kernel(self.client, image_tag("client"))
        return self._features

    def skips(self, topology: Topology) -> dict[int, str]:
        """Tunnels this engine's kernel cannot run, with the missing feature named."""
        features = self.features()
        skips = {}
        for i, tunnel in enumerate(topology.tunnels):
            support = check_protocol(tunnel.protocol, features)
            if support.runnable is False:
                skips[i] = f"kernel {features.release} lacks " + "; ".join(support.missing)
        return skips


def up(session: Session, topology: Topology, *, source: str, mode: str = "up",
       progress: Callable[[str], None] | None = None) -> DockerLab:
    session.ensure_images()
    lab = DockerLab(session.client, topology.name)
    owner = this_owner(mode)
    if lab.prepare(topology, owner):
        session.say(f"lab '{topology.name}' is already up")
        return lab
    spec = build_lab(topology, LabSecrets(topology.name))
    lab.up(spec, owner=owner, source=source, progress=progress or session.say)
    return lab


def run(session: Session, topology: Topology, *, source: str, keep: bool = False) -> RunResult:
    timings: dict[str, float] = {}
    started = time.monotonic()
    session.ensure_images()
    skips = session.skips(topology)
    timings["prepare"] = round(time.monotonic() - started, 2)
    lab = None
    try:
        t0 = time.monotonic()
        lab = up(session, topology, source=source, mode="run" if not keep else "up")
        timings["up"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        results = check_tunnels(lab, topology, skips)
        timings["check"] = round(time.monotonic() - t0, 2)
    finally:
        if lab is not None and not keep:
            t0 = time.monotonic()
            lab.down()
            timings["down"] = round(time.monotonic() - t0, 2)
    return RunResult(
        name=topology.name,
        runtime=RUNTIME,
        runtime_reason="the host's Docker engine",
        kernel=engine_kernel(session.client),
        tunnels=results,
        seconds=timings,
    )


def check(session: Session, name: str) -> RunResult:
    lab = DockerLab(session.client, name)
    topology = lab.topology()
    results = check_tunnels(lab, topology, session.skips(topology))
    return RunResult(name, RUNTIME, "the host's Docker engine", engine_kernel(session.client), results)
