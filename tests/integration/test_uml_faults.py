"""Faults of the User-Mode Linux runtime's guest: the guest killed under a running lab, and a
`vpnlab run` killed (SIGKILL: no clean-up of its own) while its guest runs. Each test boots one
guest on the small topology the other UML tests use."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from lab.runtime.uml import UmlGuest, running_slots, uml_available
from lab.runtime.uml_slot import Slot
from tests.integration.test_cli import lab_objects, vpnlab

HERE = Path(__file__).parent
SMALL = HERE / "topologies" / "small.yml"
LAB = "it-small"
USABLE, WHY = uml_available()
pytestmark = pytest.mark.skipif(not USABLE, reason=f"User-Mode Linux runtime unavailable: {WHY}")


@pytest.fixture(scope="module")
def host(vpnlab_session) -> docker.DockerClient:
    return vpnlab_session.client


def start_uml_run() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lab", "run", "--runtime", "uml", str(SMALL)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )


def wait_for_lab_in_a_guest(run: subprocess.Popen[str], timeout: float = 240) -> Slot:
    """The slot of the guest ``run`` uses (one it booted, or an idle one it took), once the lab's
    containers exist in its engine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        for slot in running_slots():
            guest = UmlGuest(slot)
            if guest.engine_answers() and lab_objects(guest.client(timeout=10), LAB):
                return slot
        time.sleep(0.2)
    out, err = run.communicate(timeout=60) if run.poll() is not None else ("", "(still running)")
    pytest.fail(f"the run's lab never came up in a guest:\n{out}\n{err}")


def kernel_processes(slot: Slot) -> list[int]:
    """The guest's linux.uml processes (its kernel and the host processes of its userspace),
    known as lab.runtime.uml knows them: by the slot's disk image on their command line."""
    return slot.kernel_processes()


def slot_lock_free(slot: Slot) -> bool:
    fd = os.open(slot.path / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the lock taken here
    return True


def wait_until_gone(slot: Slot, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := slot.processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_a_guest_killed_under_a_running_lab_is_one_error_and_leaves_nothing(host) -> None:
    run = start_uml_run()
    try:
        slot = wait_for_lab_in_a_guest(run)
        kernel = kernel_processes(slot)
        assert kernel, f"no linux.uml process of {slot.path}"
        for pid in kernel:
            os.kill(pid, signal.SIGKILL)
        out, err = run.communicate(timeout=150)  # seconds, not the engine client's 300 s timeout
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 2, out + err
    # one message (the guest's console tail it quotes may hold "error:" of its own)
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: User-Mode Linux guest ({slot.path.name}): the guest stopped under the lab: "
        "its kernel was killed by SIGKILL"], err
    assert "Traceback" not in out + err, out + err
    assert wait_until_gone(slot) == []
    assert not slot.running() and slot_lock_free(slot)
    assert lab_objects(host, LAB) == []


def test_down_all_stops_the_guest_of_a_killed_run_and_the_next_run_works(host) -> None:
    before = {s.path for s in running_slots()}
    run = start_uml_run()
    try:
        slot = wait_for_lab_in_a_guest(run)
    finally:
        run.kill()  # SIGKILL: the run cleans nothing up
        run.communicate(timeout=60)
    assert slot.running(), "the killed run's guest should outlive it (its own session)"
    down = vpnlab("down", "--all", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert re.search(r"stopped \d+ idle UML guest", down.stdout), down.stdout
    assert wait_until_gone(slot) == [] and not slot.running() and slot_lock_free(slot)
    again = vpnlab("run", "--runtime", "uml", str(SMALL), timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {s.path for s in running_slots()} <= before
    assert lab_objects(host, LAB) == []
