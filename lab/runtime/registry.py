"""The runtimes, by name, and the one ``auto`` policy that chooses between them.

Adding a runtime is one line in RUNTIMES (see docs/dev/adding-a-runtime.md):
the CLI's ``--runtime`` choices, the plugin's ``--vpnlab-runtime``, the doctor's
columns, ``status``/``down``/``check``/``exec`` (through ``engines()``) and
``auto`` (through ``full_kernel``) all follow from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import docker

from lab.errors import LabNotFound, VpnlabError
from lab.runtime.base import Runtime
from lab.runtime.host import HostRuntime
from lab.runtime.uml_runtime import UmlRuntime

if TYPE_CHECKING:  # pragma: no cover
    from lab.runtime.lab import DockerLab

RUNTIMES: dict[str, type[Runtime]] = {
    HostRuntime.name: HostRuntime,
    UmlRuntime.name: UmlRuntime,
}
HOST = HostRuntime.name  # where images are built, and what auto keeps when the host kernel suffices
AUTO = "auto"
CHOICES = (AUTO, *RUNTIMES)

Needs = Callable[[], Mapping[str, list[str]]]


def choices_help() -> str:
    """The --runtime help text, one clause per registered runtime."""
    each = ", ".join(f"'{name}' ({cls.description})" for name, cls in RUNTIMES.items())
    full = [name for name, cls in RUNTIMES.items() if cls.full_kernel]
    fallback = f"the {' or '.join(repr(n) for n in full)} runtime otherwise" if full else "nothing else"
    return (f"Where the lab's containers run: {each}, or 'auto' (the '{HOST}' runtime when the host kernel "
            f"has what the tunnels need, {fallback}).")


def lacking_reason(lacking: Mapping[str, list[str]]) -> str:
    parts = [f"{proto} needs {'; '.join(features)}" for proto, features in sorted(lacking.items())]
    return "the host kernel lacks features: " + ", ".join(parts)


def choose_runtime(
    choice: str,
    needs: Needs,
    *,
    host: docker.DockerClient | None = None,
    registry: Mapping[str, type[Runtime]] | None = None,
) -> Runtime:
    """The runtime for ``choice`` ('auto' or a registry name), chosen but not opened.

    Args:
        choice: 'auto', or a key of the registry.
        needs: per protocol, the features the host kernel lacks for it; called only
            for 'auto' (it may probe the host's kernel).
        host: the host engine's client, handed to the runtime.
        registry: the runtimes to choose from (tests pass fakes); default RUNTIMES.
    Returns:
        'auto': the host runtime, unless a protocol lacks something on the host and a
        full-kernel runtime is available (the first registered one). The reason says why.
    Raises:
        VpnlabError: ``choice`` names no runtime.
    """
    registry = RUNTIMES if registry is None else registry
    if choice != AUTO:
        if choice not in registry:
            raise VpnlabError(f"unknown runtime '{choice}'", hint="one of: " + ", ".join((AUTO, *registry)))
        chosen = registry[choice]
        return chosen(f"requested: {chosen.title}", host)
    default = registry[HOST]
    lacking = {proto: missing for proto, missing in needs().items() if missing}
    if not lacking:
        return default("auto: the host kernel has what every tunnel needs", host)
    why = lacking_reason(lacking)
    unavailable = []
    for candidate in registry.values():
        if not candidate.full_kernel:
            continue
        usable, detail = candidate.available()
        if usable:
            return candidate(f"auto: {why}", host)
        unavailable.append(f"no {candidate.short} runtime ({detail})")
    return default("; ".join([f"auto: {why}", *unavailable]), host)


def lab_engines(host: docker.DockerClient, where: str = AUTO) -> list[Runtime]:
    """The engines that may hold labs: of one runtime, or of every runtime for 'auto'."""
    kinds = RUNTIMES.values() if where == AUTO else [RUNTIMES[where]]
    return [engine for kind in kinds for engine in kind.engines(host)]


def find_lab(host: docker.DockerClient, name: str, where: str = AUTO) -> tuple[Runtime, DockerLab]:
    """The engine that holds lab ``name`` and the lab on it.

    Raises:
        LabNotFound: no engine of ``where`` holds it.
    """
    from lab.runtime.lab import DockerLab

    for engine in lab_engines(host, where):
        lab = DockerLab(engine.client, name, engine.concurrency)
        if lab.exists():
            return engine, lab
    raise LabNotFound(name)


def find_named_or_only_lab(host: docker.DockerClient, name: str | None, where: str = AUTO) -> tuple[Runtime, DockerLab]:
    """Lab ``name``, or without a name the one lab running (for commands whose --lab is optional).

    Raises:
        LabNotFound: no lab of that name, or none at all, is running.
        VpnlabError: no name was given and several labs run.
    """
    from lab.runtime.lab import list_labs

    if not name:
        names = [lab.name for engine in lab_engines(host, where) for lab in list_labs(engine.client)]
        if len(names) != 1:
            if not names:
                raise LabNotFound("(any)")
            raise VpnlabError(f"{len(names)} labs are running", hint="name one with --lab NAME ('vpnlab status' lists them)")
        name = names[0]
    return find_lab(host, name, where)


def stop_idle_engines(host: docker.DockerClient) -> int:
    """Stop engines this process may stop (guests) that hold no lab; returns how many were stopped."""
    return sum(1 for engine in lab_engines(host) if engine.stop_if_idle())
