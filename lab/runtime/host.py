"""The ``docker`` runtime: the host's engine, or whichever DOCKER_HOST or a Docker context names.

Images are built on this engine, and it never needs starting or stopping.
An engine elsewhere (another socket, a remote daemon) is this runtime aimed
at another endpoint; the kernel is then that engine's, and the switch node's
``pid_mode=host`` sees that engine's host PIDs.
"""

from __future__ import annotations

import docker

from lab.runtime.base import Progress, Runtime, quiet
from lab.runtime.engine import connect, host_endpoint


class HostRuntime(Runtime):
    name = "docker"
    title = "the host's Docker engine"
    short = "host"
    description = "the host's engine, or the one DOCKER_HOST or a Docker context names"
    full_kernel = False
    concurrency = 8

    def __init__(self, reason: str, host: docker.DockerClient | None = None) -> None:
        super().__init__(reason, host)
        self._client = host

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            return True, host_endpoint().label
        except Exception as exc:  # noqa: BLE001 - a broken context is "not available", said plainly
            return False, str(exc)

    def open(self, progress: Progress = quiet) -> None:
        if self._client is None:
            self._client = connect()

    def close(self, keep: bool = False) -> None:
        """Nothing to stop: the engine is not ours."""

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            raise RuntimeError("the docker runtime was not opened")
        return self._client

    @property
    def engine_url(self) -> str:
        # The endpoint connect() resolves, from the same environment: the CLI address comes
        # from how the client is made, not from the SDK's private attributes.
        return host_endpoint().url

    @classmethod
    def engines(cls, host: docker.DockerClient) -> list[Runtime]:
        return [cls("where the lab runs", host)]
