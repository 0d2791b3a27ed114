"""The docker runtime aimed at another engine: DOCKER_HOST or a Docker context names it.

A second dockerd is started on this machine with its own socket, data root, exec
root and pidfile, and no bridge, iptables or ip forwarding of its own, in a network
namespace of its own: dockerd started with ``--bridge none`` deletes any ``docker0``
link it can see (seen here: the first engine lost its default bridge), so only a
namespace keeps the first engine's networks and firewall untouched. The lab images are
copied into it from the first engine; then ``vpnlab`` runs as a user would, with
only the environment pointing elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from lab.images import DEBIAN_TAG, UPSTREAM_BASE
from lab.runtime.image_sync import sync_images

LAB = "it-other-engine"
TOPOLOGY = f"""\
name: {LAB}
servers:
  - name: vpn
    protocols: [wireguard, openvpn-udp]
clients:
  - name: erin
tunnels:
  - {{client: erin, server: vpn, protocol: wireguard, expect: up}}
  - {{client: erin, server: vpn, protocol: openvpn-udp, expect: up}}
"""
START_TIMEOUT = 60.0

skip_reason = (
    "starting a second dockerd needs root" if os.geteuid() != 0
    else "dockerd is missing (Debian package docker.io)" if shutil.which("dockerd") is None
    else ""
)
if skip_reason:
    pytestmark = pytest.mark.skip(reason=skip_reason)


@dataclass
class SecondEngine:
    root: Path
    process: subprocess.Popen[bytes]
    client: docker.DockerClient | None = None  # once it answers

    @property
    def url(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    def log_tail(self) -> str:
        return "\n".join((self.root / "dockerd.log").read_text(errors="replace").splitlines()[-20:])


def launch_engine(root: Path) -> SecondEngine:
    (root / "daemon.json").write_text("{}\n")  # not the first engine's /etc/docker/daemon.json
    command = [
        "unshare", "--net", "--",  # its own network namespace: see the module docstring
        "dockerd", "--host", f"unix://{root / 'docker.sock'}", "--config-file", str(root / "daemon.json"),
        "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "--pidfile", str(root / "docker.pid"),
        "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
    ]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=open(root / "dockerd.log", "wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    return SecondEngine(root, process)


def wait_until_it_answers(engine: SecondEngine) -> docker.DockerClient:
    process = engine.process
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the second dockerd exited ({process.returncode}):\n{engine.log_tail()}")
        try:  # the SDK asks the engine's API version as it is made: it fails until the socket answers
            engine.client = docker.DockerClient(base_url=engine.url, timeout=300)
            return engine.client
        except docker.errors.DockerException:
            time.sleep(0.25)
    raise RuntimeError(f"the second dockerd did not answer within {START_TIMEOUT:.0f} s:\n{engine.log_tail()}")


def stop_engine(root: Path, process: subprocess.Popen[bytes]) -> None:
    """Stop the second dockerd and the containerd it started, whatever state they are in."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    containerd_pid = root / "exec" / "containerd" / "containerd.pid"
    try:
        pid = int(containerd_pid.read_text())
        if str(root) in Path(f"/proc/{pid}/cmdline").read_text():  # ours, not a reused pid
            os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass  # gone already (dockerd stops it on a clean shutdown)
    still_mounted = [line for line in Path("/proc/mounts").read_text().splitlines() if f" {root}/" in line]
    if not still_mounted:  # never delete through a mount that outlived its engine
        shutil.rmtree(root, ignore_errors=True)


def load_debian_base(first: docker.DockerClient, second: docker.DockerClient) -> None:
    """The image vpnlab/base builds FROM, same id: otherwise vpnlab sees the base as outdated and
    rebuilds it, and this engine (no bridge) cannot reach the Debian mirror."""
    tag = next((t for t in (UPSTREAM_BASE, DEBIAN_TAG) if first.images.list(name=t)), None)
    assert tag is not None, "no Debian base image on the first engine: run 'vpnlab images build'"
    for event in second.api.load_image(first.api.get_image(tag)):
        assert "error" not in event, event


@pytest.fixture(scope="module")
def first() -> docker.DockerClient:
    return docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=300)


def host_links() -> set[str]:
    return {line.split()[0].split("@")[0] for line in subprocess.run(
        ["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def first_before(first: docker.DockerClient) -> tuple[set[str], set[str]]:
    """The first engine's networks and the host's links before the second engine starts."""
    return {n.id for n in first.networks.list()}, host_links()


@pytest.fixture(scope="module")
def second(first: docker.DockerClient, first_before: tuple[set[str], set[str]]) -> Iterator[SecondEngine]:
    root = Path(tempfile.mkdtemp(prefix="vpnlab-engine-"))  # short: a unix socket path has < 108 bytes
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


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    path = tmp_path / "other-engine.yml"
    path.write_text(TOPOLOGY)
    return path


def vpnlab(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, env=env)


def lab_events(client: docker.DockerClient, since: float, label: str = "vpnlab.lab") -> list[dict]:
    """Container events of objects carrying ``label`` since ``since`` (a finished, finite stream)."""
    until = int(time.time()) + 1
    return list(client.events(since=int(since), until=until, filters={"type": "container", "label": label},
                              decode=True))


def environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "VPNLAB_RUNTIME")}
    return {**env, **overrides}


def run_keep_status_exec_down(env: dict[str, str], topology: Path, second: SecondEngine, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = vpnlab(env, "run", str(topology), "--runtime", "docker", "--json", str(out), "--keep")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["runtime"] == "docker" and data["passed"] is True
    assert [(t["protocol"], t["observed"]) for t in data["tunnels"]] == [("wireguard", "up"), ("openvpn-udp", "up")]

    # the containers are on the second engine, the switch among them with the host's PIDs
    containers = second.client.containers.list(filters={"label": f"vpnlab.lab={LAB}"})
    roles = {c.labels["vpnlab.role"]: c for c in containers}
    assert {"router", "client", "server", "switch"} <= set(roles), sorted(roles)
    assert roles["switch"].attrs["HostConfig"]["PidMode"] == "host"

    # the docker runtime's engine is the one the environment names; UML guests on this machine
    # (another user's labs, or a run killed earlier) are not this test's business
    status = vpnlab(env, "status", "--runtime", "docker", "--json")
    assert status.returncode == 0, status.stderr
    assert [lab["name"] for lab in json.loads(status.stdout)] == [LAB]
    uname = vpnlab(env, "exec", "--lab", LAB, "router", "--", "uname", "-r")
    assert uname.returncode == 0 and uname.stdout.strip() == data["kernel"], uname.stdout + uname.stderr

    down = vpnlab(env, "down", LAB)
    assert down.returncode == 0, down.stdout + down.stderr
    assert second.client.containers.list(all=True, filters={"label": f"vpnlab.lab={LAB}"}) == []


def test_docker_host_names_the_engine(second: SecondEngine, first: docker.DockerClient, topology: Path,
                                      tmp_path: Path) -> None:
    since = time.time() - 1
    run_keep_status_exec_down(environment(DOCKER_HOST=second.url), topology, second, tmp_path)
    assert lab_events(second.client, since, "vpnlab.probe"), "the kernel probe did not run on the second engine"
    assert lab_events(first, since) == [], "lab objects appeared on the first engine"


def test_a_docker_context_names_the_engine(second: SecondEngine, first: docker.DockerClient, topology: Path,
                                           tmp_path: Path) -> None:
    config = tmp_path / "docker-config"
    config.mkdir()
    made = subprocess.run(["docker", "context", "create", "vpnlab-second", "--docker", f"host={second.url}"],
                          capture_output=True, text=True, env=environment(DOCKER_CONFIG=str(config)))
    assert made.returncode == 0, made.stderr
    since = time.time() - 1
    env = environment(DOCKER_CONFIG=str(config), DOCKER_CONTEXT="vpnlab-second")
    run_keep_status_exec_down(env, topology, second, tmp_path)
    assert lab_events(first, since) == [], "lab objects appeared on the first engine"


def test_the_first_engine_keeps_its_networks(second: SecondEngine, first: docker.DockerClient,
                                            first_before: tuple[set[str], set[str]]) -> None:
    networks, links = first_before
    assert {n.id for n in first.networks.list()} == networks
    assert links <= host_links(), f"host links gone: {sorted(links - host_links())}"
