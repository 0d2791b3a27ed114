"""What every runtime is: one Docker engine a lab runs on, and how to reach it.

A runtime is a class registered by name in ``lab.runtime.registry.RUNTIMES``;
the CLI's ``--runtime``, the pytest plugin's ``--vpnlab-runtime``, the doctor's
columns and the ``auto`` policy all read that registry. Its life::

    runtime = RUNTIMES["uml"]("requested: ...", host=host_client)   # no side effects
    runtime.open(progress)          # connect / boot a guest / load images into it
    runtime.client ... runtime.kernel ... runtime.engine_url
    runtime.close(keep=False)       # stop what open() started, unless it still holds labs

Runtimes found by ``engines()`` (labs may be on them now) were not opened by
this process: ``close`` leaves them alone; ``stop_if_idle`` is how ``down``
stops an idle guest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import docker

from lab.errors import VpnlabError
from lab.runtime.engine import engine_kernel

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """A progress callback that says nothing."""


class Runtime(ABC):
    """One engine a lab's containers run on.

    Class attributes:
        name: the registry key and ``--runtime`` value.
        title: a noun phrase for reasons ("requested: <title>").
        short: how the auto reason names it when it is missing ("no <short> runtime (why)").
        description: one line for ``--help``.
        full_kernel: it offers kernel features a host may lack (PPP, L2TP, ESP): ``auto``
            moves a topology here when the host kernel lacks what its tunnels need.
        concurrency: engine calls and tunnel starts at once on this engine.
        time_scale: how much longer than on an ordinary host a negotiation takes here: the
            tunnels' deadlines are multiplied by it (the reasons say so).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    short: ClassVar[str]
    description: ClassVar[str]
    full_kernel: ClassVar[bool] = False
    concurrency: ClassVar[int] = 8
    time_scale: ClassVar[float] = 1.0

    def __init__(self, reason: str, host: docker.DockerClient | None = None) -> None:
        """Choose this runtime; nothing is started until ``open``.

        Args:
            reason: why it was chosen (shown with every result, e.g. "auto: ...").
            host: the engine the lab images are built on; a guest runtime loads them
                from it. None: the host runtime connects itself when opened.
        """
        self.reason = reason
        self.host = host
        self.timings: dict[str, float] = {}

    @classmethod
    @abstractmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this machine can run this runtime, without starting anything.

        Returns:
            (True, what it would use) or (False, what is missing and how to get it).
        """

    @abstractmethod
    def open(self, progress: Progress = quiet) -> None:
        """Make the engine ready: connect, boot a guest, load the lab images into it.

        Args:
            progress: called with short sentences worth showing a person.
        Raises:
            PrerequisiteError: the runtime is not available here (the message says why).
            DockerUnavailable: its engine does not answer.
            VpnlabError: anything else that stops it (a guest that fails to boot names its log).
        """

    @abstractmethod
    def close(self, keep: bool = False) -> None:
        """Release what ``open`` took. Safe to call more than once, or after a failed ``open``.

        Args:
            keep: leave a guest running (labs were left up on it). A guest that still
                holds labs is never stopped, whatever ``keep`` says.
        """

    @property
    @abstractmethod
    def client(self) -> docker.DockerClient:
        """The docker SDK client for this runtime's engine.

        Raises:
            RuntimeError: the runtime was not opened (or already closed).
        """

    @property
    @abstractmethod
    def engine_url(self) -> str:
        """The engine's address as the docker CLI takes it after ``-H`` (testinfra uses it)."""

    @property
    def kernel(self) -> str:
        """The release of the kernel the engine's containers run on."""
        return engine_kernel(self.client)

    def probe_key(self) -> str | None:
        """What identifies this engine's kernel, its modules and the probe's image exactly, where
        a kernel probe of one boot holds for the next (a guest booted from the same kernel file
        with the same modules): its result is then kept (lab.kernel.probe_cache). None (the
        default): probe every time, as a host's kernel may gain or lose modules at any moment."""
        return None

    @property
    def where(self) -> str:
        """How ``vpnlab status`` names this engine."""
        return self.name

    @classmethod
    @abstractmethod
    def engines(cls, host: docker.DockerClient) -> list[Runtime]:
        """The engines of this kind that may hold labs now, reachable and ready to use.

        Args:
            host: the host's engine client the session already has.
        Returns:
            one runtime per engine (reason "where the lab runs"); not opened by this
            process, so ``close`` does nothing to them.
        """

    def stop_if_idle(self) -> bool:
        """Stop this engine if it holds no lab and no other vpnlab process uses it.

        Returns:
            whether it was stopped (the host's engine never is).
        """
        return False

    def failure(self) -> VpnlabError | None:
        """Why this engine stopped under the command (asked after an engine call failed), or None
        while it answers or when its failure is nothing but the call's own error (the host's engine)."""
        return None

    def notices(self) -> list[str]:
        """Things worth telling a person after ``open`` (e.g. guest modules that failed to load)."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.reason}>"
