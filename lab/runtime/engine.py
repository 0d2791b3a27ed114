"""Connecting to a Docker engine, and the labels every lab object carries.

Which engine "the host's" is follows the docker CLI: ``DOCKER_HOST``, else the
Docker context named by ``DOCKER_CONTEXT`` or by ``currentContext`` in the
docker config (``$DOCKER_CONFIG`` or ``~/.docker``), else the local socket.
docker-py's ``from_env`` reads only ``DOCKER_HOST``, and its ContextAPI looks
for contexts beside a config.json that a fresh ``docker context create`` need
not write, so contexts are read here from the CLI's own layout.

Lookup and cleanup always go by label (``vpnlab.lab=<name>``), never by
container names alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.tls
import requests

from lab.errors import DockerUnavailable

LABEL_LAB = "vpnlab.lab"
LABEL_NODE = "vpnlab.node"
LABEL_ROLE = "vpnlab.role"
LABEL_HASH = "vpnlab.topology-hash"
LABEL_OWNER = "vpnlab.owner"
LABEL_RUN = "vpnlab.run"  # one "up" of a lab: its clean-up removes only what carries its own
LABEL_SOURCE = "vpnlab.source"
LABEL_VERSION = "vpnlab.version"

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Endpoint:
    """Where an engine is, as the docker CLI would find it."""

    url: str  # what ``docker -H`` takes
    context: str | None = None  # the Docker context it came from, if any
    tls: docker.tls.TLSConfig | None = None

    @property
    def label(self) -> str:
        return f"{self.url} (Docker context '{self.context}')" if self.context else self.url


def docker_config_dir(environ: Any = os.environ) -> Path:
    return Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def current_context(environ: Any = os.environ) -> str | None:
    """DOCKER_CONTEXT, else the config's currentContext; None for the default context."""
    name = environ.get("DOCKER_CONTEXT")
    if not name:
        try:
            name = json.loads((docker_config_dir(environ) / "config.json").read_text()).get("currentContext")
        except (OSError, ValueError):
            name = None
    return None if name in (None, "", "default") else name


def context_endpoint(name: str, environ: Any = os.environ) -> Endpoint:
    """The docker endpoint of a context, read from contexts/meta/<sha256(name)>/meta.json."""
    root = docker_config_dir(environ) / "contexts"
    key = hashlib.sha256(name.encode()).hexdigest()
    meta_file = root / "meta" / key / "meta.json"
    if not meta_file.exists():
        raise DockerUnavailable(f"Docker context '{name}': not found (no {meta_file})")
    try:
        endpoint = json.loads(meta_file.read_text())["Endpoints"]["docker"]
        url = str(endpoint["Host"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DockerUnavailable(f"Docker context '{name}': unreadable {meta_file} ({exc!r})") from None
    tls_dir = root / "tls" / key / "docker"
    ca, cert, key_file = (tls_dir / f for f in ("ca.pem", "cert.pem", "key.pem"))
    tls = None
    if ca.exists() or cert.exists():
        tls = docker.tls.TLSConfig(
            client_cert=(str(cert), str(key_file)) if cert.exists() and key_file.exists() else None,
            ca_cert=str(ca) if ca.exists() else None,
            verify=ca.exists() and not endpoint.get("SkipTLSVerify", False),
        )
    return Endpoint(url, context=name, tls=tls)


def host_endpoint(environ: Any = os.environ) -> Endpoint:
    """The engine vpnlab calls the host's: DOCKER_HOST, a Docker context, or the local socket."""
    if environ.get("DOCKER_HOST"):
        return Endpoint(environ["DOCKER_HOST"])
    name = current_context(environ)
    return context_endpoint(name, environ) if name else Endpoint(DEFAULT_SOCKET)


def connect(timeout: int = 120, endpoint: Endpoint | None = None) -> docker.DockerClient:
    """A client for ``endpoint`` (default: the host's engine, see host_endpoint), checked with a ping."""
    where = endpoint.label if endpoint else os.environ.get("DOCKER_HOST", DEFAULT_SOCKET)
    try:
        if endpoint is None and not os.environ.get("DOCKER_HOST"):
            endpoint = host_endpoint()
            where = endpoint.label
        if endpoint is None:  # DOCKER_HOST: from_env also honours DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
            client = docker.from_env(timeout=timeout)
        else:
            client = docker.DockerClient(base_url=endpoint.url, tls=endpoint.tls or False, timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
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
