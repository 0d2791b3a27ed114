"""One process per lab name per engine: the lock file, what an existing lab of the name means
(kept by 'up', held by a live run, left by a dead one), a failed 'up' that removes only its own,
and engine work that Ctrl-C waits for instead of cutting."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lab.errors import LabExistsError
from lab.runtime import lab_lock
from lab.runtime.lab import DockerLab, topology_hash
from lab.runtime.lab_lock import LabInUse, StateUnusable, claim, lock_path, release
from lab.runtime.uml_slot import UnsafePath
from lab.runtime.uninterrupted import Cancelled, finish_first, signals_as_interrupts
from lab.topology import load_topology
from lab import resources


class Box:
    """A container as the engine lists it."""

    def __init__(self, engine: Engine, name: str, labels: dict[str, str], status: str = "running"):
        self.engine, self.name, self.labels, self.status = engine, name, labels, status
        self.attrs = {"Names": [f"/{name}"]}
        self.short_id = name

    def remove(self, **_options: object) -> None:
        self.engine.boxes.remove(self)


class Listing:
    def __init__(self, items: list[Box]):
        self.items = items

    def list(self, filters: dict[str, Any] | None = None, **_options: object) -> list[Box]:
        wanted = (filters or {}).get("label", [])
        wanted = {wanted} if isinstance(wanted, str) else set(wanted)
        return [b for b in self.items if wanted <= {f"{k}={v}" for k, v in b.labels.items()}]


class Engine:
    """An engine holding containers with labels; no networks or volumes."""

    def __init__(self) -> None:
        self.boxes: list[Box] = []
        self.containers = Listing(self.boxes)
        self.networks = self.volumes = Listing([])

    def info(self) -> dict[str, str]:
        return {"ID": "FAKE:ENGINE"}

    def add(self, name: str, owner: str, topology_hash: str = "h", status: str = "running", run: str = "r1") -> None:
        labels = {"vpnlab.lab": "office", "vpnlab.owner": owner, "vpnlab.topology-hash": topology_hash,
                  "vpnlab.run": run, "vpnlab.source": "office.yml", "vpnlab.node": name}
        self.boxes.append(Box(self, name, labels, status))


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VPNLAB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def engine(state: Path) -> Any:
    made = Engine()
    yield made
    release(made, "office")  # type: ignore[arg-type]


# --- the lock file --------------------------------------------------------------


def test_the_lock_lives_in_private_folders_per_engine(engine, state: Path) -> None:
    claim(engine, "office")
    path = lock_path(engine, "office")
    assert path.parent.parent == state / "labs" and path.name == "office.lock"
    for folder in (state, state / "labs", path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert path.read_text() == f"pid {os.getpid()} on {os.uname().nodename}\n"


def test_a_name_another_process_holds_is_refused_naming_the_holder_and_what_to_do(engine) -> None:
    path = lock_path(engine, "office")
    path.write_text("pid 4242 on elsewhere\n")
    other = os.open(path, os.O_RDWR)  # another open file: flock conflicts as with another process
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with pytest.raises(LabInUse) as refused:
            claim(engine, "office")
    finally:
        os.close(other)
    text = str(refused.value)
    assert "lab 'office' is in use: another vpnlab process is running it (pid 4242 on elsewhere)" in text
    assert "'vpnlab down office'" in text and "another name" in text and refused.value.exit_code == 2
    claim(engine, "office")  # the holder let go: free again


def test_one_process_cannot_hold_a_name_twice_and_release_frees_it(engine) -> None:
    claim(engine, "office")
    with pytest.raises(LabInUse, match="this process is already using it"):
        claim(engine, "office")
    release(engine, "office")
    claim(engine, "office")


def test_a_killed_holder_leaves_no_lock(engine) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lab.runtime.lab_lock import claim;"
         "from tests.unit.test_lab_lock import Engine; claim(Engine(), 'office'); print('held', flush=True);"
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(LabInUse, match=f"pid {holder.pid}"):
        claim(engine, "office")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    claim(engine, "office")


def test_a_state_folder_that_cannot_be_made_is_one_error_naming_it(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("VPNLAB_STATE_DIR", str(tmp_path / "file" / "state"))
    with pytest.raises(StateUnusable) as refused:
        claim(Engine(), "office")  # type: ignore[arg-type]
    assert str(tmp_path / "file" / "state") in str(refused.value) and "VPNLAB_STATE_DIR" in str(refused.value)


def test_a_lock_file_planted_as_a_link_is_refused_and_its_target_untouched(engine, tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")
    path = lock_path(engine, "office")
    path.symlink_to(target)
    with pytest.raises(UnsafePath, match="symbolic link"):
        claim(engine, "office")
    assert target.read_text() == "keep me"


def test_a_full_disk_still_locks_without_saying_who(engine, monkeypatch) -> None:
    def full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lab_lock.os, "pwrite", full)
    claim(engine, "office")
    with pytest.raises(LabInUse):
        claim(engine, "office")


# --- an existing lab of the name ------------------------------------------------


@pytest.fixture
def office() -> Any:
    return load_topology(resources.topology("home-office")).model_copy(update={"name": "office"})


def test_a_lab_kept_by_up_is_refused_to_a_run_and_left_alone(engine, office) -> None:
    engine.add("router", "up", topology_hash(office))
    with pytest.raises(LabInUse, match="kept up by 'vpnlab up' \\(office.yml\\)"):
        DockerLab(engine, "office").prepare(office, "run:here:1")
    assert [b.name for b in engine.boxes] == ["router"]


def test_a_kept_lab_is_reused_by_up_and_refused_to_another_topology(engine, office) -> None:
    engine.add("router", "up", topology_hash(office))
    assert DockerLab(engine, "office").prepare(office, "up") is True
    with pytest.raises(LabExistsError, match="vpnlab down office"):
        DockerLab(engine, "office").prepare(office.model_copy(update={"nat_probe": True}), "up")
    assert [b.name for b in engine.boxes] == ["router"]


def test_a_live_run_s_half_made_lab_is_refused_not_removed(engine, office) -> None:
    live = f"run:{os.uname().nodename}:{os.getppid()}"
    engine.add("router", live, topology_hash(office), status="running")
    engine.add("switch", live, topology_hash(office), status="created")  # not started yet
    with pytest.raises(LabInUse, match=f"held by {live}"):
        DockerLab(engine, "office").prepare(office, "up")
    assert len(engine.boxes) == 2


def test_a_dead_run_s_lab_is_removed(engine, office) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    engine.add("router", f"run:{os.uname().nodename}:{dead.stdout.strip()}", topology_hash(office))
    assert DockerLab(engine, "office").prepare(office, "run:here:1") is False
    assert engine.boxes == []


def test_a_failed_up_removes_only_what_it_made(engine, office, monkeypatch) -> None:
    engine.add("router", "run:elsewhere:1", run="someone-else")
    lab = DockerLab(engine, "office")

    def half_made(*_args: object, **_kwargs: object) -> None:
        engine.add("client", "up", run=lab.run_id)
        raise RuntimeError("setup failed")

    monkeypatch.setattr(lab, "_up", half_made)
    with pytest.raises(RuntimeError, match="setup failed"):
        lab.up(None, owner="up", source="office.yml")  # type: ignore[arg-type]
    assert [(b.name, b.labels["vpnlab.run"]) for b in engine.boxes] == [("router", "someone-else")]


# --- interrupts -----------------------------------------------------------------


def test_ctrl_c_waits_for_the_engine_work_then_is_raised() -> None:
    main = threading.main_thread().ident
    seen: list[str] = []

    def work(cancel: threading.Event) -> None:
        assert main is not None
        signal.pthread_kill(main, signal.SIGINT)
        signal.pthread_kill(main, signal.SIGINT)  # pressed twice
        for _ in range(100):
            if cancel.wait(0.05):
                break
        time.sleep(0.2)  # a request under way when the interrupt came
        seen.append("finished the request")
        raise Cancelled()

    with pytest.raises(KeyboardInterrupt):
        finish_first(work)
    assert seen == ["finished the request"]


def test_work_s_own_error_and_result_come_back() -> None:
    assert finish_first(lambda _cancel: 7) == 7
    with pytest.raises(ValueError, match="bad"):
        finish_first(lambda _cancel: (_ for _ in ()).throw(ValueError("bad")))


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["sighup", "sigterm"])
def test_hang_up_and_terminate_are_interrupts_while_a_command_runs(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt), signals_as_interrupts():
        os.kill(os.getpid(), sig)
        time.sleep(1)
    assert signal.getsignal(sig) == before


def test_letting_go_removes_the_lock_file(engine, state: Path) -> None:
    claim(engine, "office")
    path = lock_path(engine, "office")
    release(engine, "office")
    assert not path.exists() and path.parent.is_dir()  # the engine's folder stays (a claim may be making it)
    claim(engine, "office")  # made again on the next claim
    assert path.is_file()


def test_a_lock_file_removed_by_a_holder_letting_go_is_not_taken_for_the_lock(engine, monkeypatch) -> None:
    path = lock_path(engine, "office")
    opened = []
    real_open = lab_lock.open_no_follow

    def open_then_lose_the_race(at: Path, flags: int) -> int:
        fd = real_open(at, flags)
        if not opened:  # the holder removes the file between this open and the flock
            os.unlink(at)
        opened.append(os.fstat(fd).st_ino)
        return fd

    monkeypatch.setattr(lab_lock, "open_no_follow", open_then_lose_the_race)
    claim(engine, "office")
    assert len(opened) == 2 and os.stat(path).st_ino == opened[1]  # the lock held is the file the path names
