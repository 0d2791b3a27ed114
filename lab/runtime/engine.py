"""Connecting to the Docker engine, and the labels every lab object carries.

Lookup and cleanup always go by label (``vpnlab.lab=<name>``), never by
container names alone.
"""

from __future__ import annotations

import os
from typing import Any

import docker
import docker.errors
import requests

from lab.errors import DockerUnavailable

LABEL_LAB = "vpnlab.lab"
LABEL_NODE = "vpnlab.node"
LABEL_ROLE = "vpnlab.role"
LABEL_HASH = "vpnlab.topology-hash"
LABEL_OWNER = "vpnlab.owner"
LABEL_SOURCE = "vpnlab.source"
LABEL_VERSION = "vpnlab.version"


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine named by DOCKER_HOST (or the local socket), checked with a ping."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise DockerUnavailable(f"{where}: {_short(exc)}") from None
    return client


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


def container_name(lab: str, node: str) -> str:
    return f"vpnlab-{lab}-{node}"


def lab_filter(lab: str | None = None) -> dict[str, Any]:
    return {"label": f"{LABEL_LAB}={lab}" if lab else LABEL_LAB}


def engine_kernel(client: docker.DockerClient) -> str:
    return str(client.info().get("KernelVersion", "unknown"))
