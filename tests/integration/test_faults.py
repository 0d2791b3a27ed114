"""Faults injected into `vpnlab run` on the host's engine: two runs of one lab name, Ctrl-C pressed
twice, a hang-up, an engine that does not answer, a state folder that is full or read-only.
Each ends in one message and an exit code, no traceback, and nothing of the lab left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.test_cli import SMALL, lab_objects, vpnlab, wait_for_containers

NAME = "it-faults"


@pytest.fixture(scope="module")
def engine(vpnlab_session) -> docker.DockerClient:
    return vpnlab_session.client


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    path = tmp_path / "faults.yml"
    path.write_text(SMALL.read_text().replace("name: it-small", f"name: {NAME}"))
    return path


@pytest.fixture(autouse=True)
def nothing_left_behind(engine: docker.DockerClient) -> Iterator[None]:
    """Whatever a test does, its lab is gone afterwards (asserted in the test; removed here if not)."""
    yield
    if leftovers(engine):
        vpnlab("down", NAME, "--runtime", "docker")


def leftovers(engine: docker.DockerClient) -> list[str]:
    """Everything labelled with the lab: containers, networks and volumes."""
    volumes = engine.volumes.list(filters={"label": f"vpnlab.lab={NAME}"})
    return lab_objects(engine, NAME) + [v.name for v in volumes]


def start_run(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lab", "run", str(path), "--runtime", "docker"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )


def assert_refused(proc: subprocess.CompletedProcess[str] | tuple[int, str]) -> None:
    code, err = (proc.returncode, proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else proc
    assert code == 2, err
    assert f"lab '{NAME}' is in use" in err and f"vpnlab down {NAME}" in err and "another name" in err, err
    assert err.count("error:") == 1 and "Traceback" not in err, err


def test_two_runs_of_one_name_at_once_one_runs_the_other_is_refused(engine, topology: Path) -> None:
    first, second = start_run(topology), start_run(topology)
    outcomes = sorted(((p.wait(timeout=240), p.communicate()[1]) for p in (first, second)), key=lambda o: o[0])
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    assert_refused(outcomes[1])
    assert leftovers(engine) == []


def test_an_up_while_a_run_builds_the_lab_is_refused_and_the_run_goes_on(engine, topology: Path) -> None:
    run = start_run(topology)
    wait_for_containers(engine, NAME)
    run.send_signal(signal.SIGSTOP)  # held half made while the 'up' looks (a whole run can be shorter than its start)
    try:
        assert_refused(vpnlab("up", str(topology), "--runtime", "docker"))
    finally:
        run.send_signal(signal.SIGCONT)
    out, err = run.communicate(timeout=240)
    assert run.returncode == 0, out + err
    assert leftovers(engine) == []


def test_a_run_on_a_lab_kept_by_up_is_refused_and_touches_nothing(engine, topology: Path) -> None:
    assert vpnlab("up", str(topology), "--runtime", "docker").returncode == 0
    kept = sorted((c.id, c.status) for c in engine.containers.list(all=True, filters={"label": f"vpnlab.lab={NAME}"}))
    assert_refused(vpnlab("run", str(topology), "--runtime", "docker"))
    assert sorted((c.id, c.status) for c in engine.containers.list(all=True, filters={"label": f"vpnlab.lab={NAME}"})) == kept
    assert vpnlab("down", NAME).returncode == 0
    assert leftovers(engine) == []


@pytest.mark.parametrize("gap", [0.0, 0.05, 0.3], ids=["at-once", "soon-after", "during-teardown"])
def test_ctrl_c_pressed_twice_exits_130_and_leaves_nothing(engine, topology: Path, gap: float) -> None:
    run = start_run(topology)
    wait_for_containers(engine, NAME)
    run.send_signal(signal.SIGINT)
    time.sleep(gap)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert leftovers(engine) == []


def test_a_hang_up_ends_the_run_and_leaves_nothing(engine, topology: Path) -> None:
    run = start_run(topology)
    wait_for_containers(engine, NAME)
    run.send_signal(signal.SIGHUP)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert leftovers(engine) == []


def test_an_engine_that_does_not_answer_is_one_error(topology: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    proc = vpnlab("run", str(topology), "--runtime", "docker", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "docker engine: not reachable" in proc.stderr and "no-engine.sock" in proc.stderr
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stdout + proc.stderr


@pytest.fixture
def tiny_state(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """A 64 KiB tmpfs as the state folder, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    monkeypatch.setenv("VPNLAB_STATE_DIR", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_state_disk_still_locks_the_lab(engine, topology: Path, tiny_state: Path) -> None:
    # The lock is an empty file (creating one takes no block on tmpfs); who holds it is written when it fits.
    subprocess.run(["dd", "if=/dev/zero", f"of={tiny_state / 'filler'}", "bs=4k", "count=64"], capture_output=True)
    assert os.statvfs(tiny_state).f_bavail == 0
    proc = vpnlab("run", str(topology), "--runtime", "docker")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the lock was made in the engine's folder (a run that cannot lock exits 2), and its holder
    # removed the file as it let go: nothing of the lab's is left in the state folder
    assert len([p for p in tiny_state.glob("labs/*") if p.is_dir()]) == 1
    assert list(tiny_state.glob("labs/*/*.lock")) == []
    assert leftovers(engine) == []


def test_a_read_only_state_folder_is_one_error_naming_it(engine, topology: Path, tiny_state: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_state)], check=True)
    proc = vpnlab("run", str(topology), "--runtime", "docker")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert str(tiny_state) in proc.stderr and "VPNLAB_STATE_DIR" in proc.stderr, proc.stderr
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
    assert leftovers(engine) == []


def test_a_matrix_lab_whose_name_is_in_use_is_an_error_cell_and_the_other_lab_is_untouched(
        engine, tmp_path: Path) -> None:
    """The matrix's lab for profile 'open' is named mx-open; one kept by 'vpnlab up' under that
    name is refused, not removed (before: the matrix's clean-up removed it by its name)."""
    kept = tmp_path / "mx-open.yml"
    kept.write_text(SMALL.read_text().replace("name: it-small", "name: mx-open"))
    assert vpnlab("up", str(kept), "--runtime", "docker").returncode == 0
    try:
        before = sorted(c.id for c in engine.containers.list(filters={"label": "vpnlab.lab=mx-open"}))
        out = tmp_path / "m.json"
        proc = vpnlab("matrix", "--profiles", "open", "--protocols", "openvpn-udp", "--runtime", "docker",
                      "--json", str(out), timeout=300)
        assert "Traceback" not in proc.stdout + proc.stderr
        [cell] = json.loads(out.read_text())["cells"]
        assert cell["observed"] == "error" and "in use" in cell["reason"], cell
        assert sorted(c.id for c in engine.containers.list(filters={"label": "vpnlab.lab=mx-open"})) == before
    finally:
        assert vpnlab("down", "mx-open").returncode == 0
