"""Choosing where a lab runs: the host's Docker engine or a User-Mode Linux guest's.

``auto`` (the default) keeps the host's engine when the host kernel has what
the topology's protocols need, and moves to a UML guest otherwise; the
result says which was used and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import docker

from lab.errors import PrerequisiteError
from lab.runtime.engine import engine_kernel
from lab.runtime.lab import holds_labs
from lab.runtime.uml import UmlGuest, uml_available

CHOICES = ("auto", "docker", "uml")


@dataclass
class Runtime:
    kind: str  # "docker" or "uml"
    client: docker.DockerClient
    reason: str
    guest: UmlGuest | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def concurrency(self) -> int:
        """Tunnels started at once: a UML guest has one CPU."""
        return 3 if self.kind == "uml" else 8

    @property
    def kernel(self) -> str:
        return engine_kernel(self.client)

    def close(self, keep_guest: bool = False) -> None:
        """Release the guest; stop it unless asked to keep it or it still holds labs."""
        if self.guest is None:
            return
        try:
            busy = holds_labs(self.client)
        except Exception:  # noqa: BLE001 - an unreachable guest is stopped all the same
            busy = False
        if not keep_guest and not busy:
            self.guest.stop()
        self.guest.release()
        self.guest = None


def host_runtime(host: docker.DockerClient, reason: str) -> Runtime:
    return Runtime("docker", host, reason)


def uml_runtime(reason: str, progress: Callable[[str], None]) -> Runtime:
    ok, why = uml_available()
    if not ok:
        raise PrerequisiteError("User-Mode Linux runtime", why)
    guest = UmlGuest.acquire()
    try:
        booted = guest.ensure_running(progress)
    except BaseException:
        guest.stop()
        guest.release()
        raise
    runtime = Runtime("uml", guest.client(), reason, guest)
    runtime.timings["guest_boot"] = round(booted, 2)
    return runtime


def auto_reason(missing: dict[str, list[str]]) -> tuple[bool, str]:
    """From {protocol: missing host features}: (needs a full kernel, why)."""
    lacking = {p: m for p, m in missing.items() if m}
    if not lacking:
        return False, "the host kernel has what every tunnel needs"
    parts = [f"{proto} needs {'; '.join(features)}" for proto, features in sorted(lacking.items())]
    return True, "the host kernel lacks features: " + ", ".join(parts)
