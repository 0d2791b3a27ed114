"""`vpnlab matrix --engine A --engine B`: labs spread over two Docker engines at once.

The second engine is a second dockerd on this machine, in a network namespace of its own
(helpers from test_other_engine: ``--bridge none`` would otherwise delete the host's docker0).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from lab.runtime.image_sync import sync_images

from .test_other_engine import (
    SecondEngine,
    environment,
    lab_events,
    launch_engine,
    load_debian_base,
    skip_reason,
    stop_engine,
    vpnlab,
    wait_until_it_answers,
)

FIRST = "unix:///var/run/docker.sock"
if skip_reason:
    pytestmark = pytest.mark.skip(reason=skip_reason)


@pytest.fixture(scope="module")
def first() -> docker.DockerClient:
    return docker.DockerClient(base_url=FIRST, timeout=300)


@pytest.fixture(scope="module")
def second(first: docker.DockerClient) -> Iterator[SecondEngine]:
    root = Path(tempfile.mkdtemp(prefix="vpnlab-mx-"))
    engine = launch_engine(root)
    try:
        client = wait_until_it_answers(engine)
        load_debian_base(first, client)
        sync_images(first, client)
        yield engine
    finally:
        if engine.client is not None and engine.process.poll() is None:
            for container in engine.client.containers.list(all=True):
                container.remove(force=True)
        stop_engine(root, engine.process)


def test_labs_run_on_both_engines(second: SecondEngine, first: docker.DockerClient, tmp_path: Path) -> None:
    out = tmp_path / "matrix.json"
    since = time.time() - 1
    proc = vpnlab(environment(), "matrix", "--engine", FIRST, "--engine", second.url,
                  "--profiles", "open,no-helpers", "--protocols", "wireguard,openvpn-tcp", "--jobs", "2",
                  "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["passed"] and data["summary"]["cells"] == 4
    assert all(c["observed"] == c["expect"] for c in data["cells"])
    # one lab on each engine, nothing left on either
    assert lab_events(first, since), "no lab ran on the first engine"
    assert lab_events(second.client, since), "no lab ran on the second engine"
    for client in (first, second.client):
        assert client.containers.list(all=True, filters={"label": "vpnlab.lab"}) == []


def test_an_unreachable_engine_is_exit_2_before_anything_is_made(tmp_path: Path) -> None:
    proc = vpnlab(environment(), "matrix", "--engine", f"unix://{tmp_path}/nothing.sock", "--profiles", "open",
                  "--protocols", "wireguard")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
