"""A UML slot is trusted only after checks: its folders, the files written into it, and the guest it names.

Real processes and real folders (the tests run as root, so a folder can be given to another uid);
nothing here boots a guest.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.errors import VpnlabError
from lab.runtime import uml
from lab.runtime.uml import Slot, UmlGuest, prepare_disk, running_slots
from lab.runtime.uml_slot import UnsafePath, process_start_time, write_file

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another uid needs root")
NOBODY = 65534


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setenv("VPNLAB_STATE_DIR", str(root))
    return root


NAP = (sys.executable, "-c", "import time; time.sleep(60)")  # a process that sleeps, argv kept


def spawn(*argv: str) -> subprocess.Popen[bytes]:
    """A real process in a session of its own: the kind of process group stop() would kill."""
    return subprocess.Popen(list(argv), start_new_session=True, stdin=subprocess.DEVNULL)


@pytest.fixture
def unrelated() -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn("sleep", "60")
    yield proc
    proc.kill()
    proc.wait()


def slot_in(folder: Path) -> Slot:
    folder.mkdir(parents=True, mode=0o700)
    return Slot(folder, 0)


# --- a guest is known by its PID, its start time and its command line ------------------------


def test_a_reused_pid_with_another_start_time_is_never_signalled(tmp_path, unrelated, caplog) -> None:
    slot = slot_in(tmp_path / "slot0")
    start = process_start_time(unrelated.pid)
    assert start is not None
    slot.pid_file.write_text(f"{unrelated.pid} {start - 1}\n")
    with caplog.at_level(logging.WARNING, logger="vpnlab.uml"):
        UmlGuest(slot).stop()
    time.sleep(0.2)
    assert unrelated.poll() is None, "stop() signalled a process that is not the guest"
    assert not slot.pid_file.exists()
    assert f"PID {unrelated.pid} started at tick {start}" in caplog.text and "signalling nothing" in caplog.text


def test_a_pid_whose_command_line_names_another_slot_is_never_signalled(tmp_path, unrelated, caplog) -> None:
    slot = slot_in(tmp_path / "slot0")
    slot.pid_file.write_text(f"{unrelated.pid} {process_start_time(unrelated.pid)}\n")  # right start time
    with caplog.at_level(logging.WARNING, logger="vpnlab.uml"):
        assert not slot.running()
        UmlGuest(slot).stop()
    time.sleep(0.2)
    assert unrelated.poll() is None
    assert f"does not name {slot.launch_script}" in caplog.text


def test_an_old_pid_file_with_only_a_pid_is_checked_by_command_line(tmp_path, unrelated) -> None:
    slot = slot_in(tmp_path / "slot0")
    slot.pid_file.write_text(str(unrelated.pid))  # the format before start times were recorded
    UmlGuest(slot).stop()
    time.sleep(0.2)
    assert unrelated.poll() is None


def test_the_real_guest_is_recognised_and_stopped(tmp_path, monkeypatch) -> None:
    slot = slot_in(tmp_path / "slot0")
    # A stand-in guest: its command line names the slot's launch script, as `sh launch.sh` does.
    guest = spawn("sh", "-c", "sleep 60", str(slot.launch_script))
    try:
        slot.record_guest(guest.pid)
        assert slot.guest_pid() == guest.pid and slot.running()
        monkeypatch.setattr(uml, "HALT_TIMEOUT", 0.5)  # it does not watch the halt flag
        UmlGuest(slot).stop()
        assert guest.wait(timeout=5) is not None
        assert not slot.pid_file.exists()
    finally:
        guest.kill()
        guest.wait()


def test_a_guest_kernel_left_behind_by_a_dead_launch_script_is_ended(tmp_path, unrelated) -> None:
    # The launch script (guest.pid) is gone, but the guest's kernel lives on and holds the disk
    # image (a new guest then failed: "mount: Resource temporarily unavailable"). It is found by
    # the slot's paths in its command line, as linux.uml's init=/ubd0= arguments name them.
    slot = slot_in(tmp_path / "slot0")
    # Stand-ins that never fork (sh would fork sleep, and the child shares the slot's arguments
    # until it execs: found too, as a real guest's helper processes are, but not what is counted here)
    kernel = spawn(*NAP, "linux.uml", f"init={slot.path / 'init.sh'}", f"ubd0={slot.disk}")
    other_slot = spawn(*NAP, "linux.uml", f"init={tmp_path / 'slot1' / 'init.sh'}")
    try:
        assert slot.processes() == [kernel.pid]
        UmlGuest(slot).stop()  # no guest.pid at all
        assert kernel.wait(timeout=5) is not None
        assert other_slot.poll() is None and unrelated.poll() is None
    finally:
        for proc in (kernel, other_slot):
            proc.kill()
            proc.wait()


def test_a_guest_pid_file_planted_as_a_link_is_not_read(tmp_path, unrelated) -> None:
    slot = slot_in(tmp_path / "slot0")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(str(unrelated.pid))
    slot.pid_file.symlink_to(elsewhere)
    assert slot.guest_pid() is None


# --- folders: made 0700, refused when foreign, group/other-writable or a link ----------------


def test_acquire_makes_the_state_folders_private(state) -> None:
    guest = UmlGuest.acquire()
    try:
        for folder in (state, state / "uml", guest.slot.path):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    finally:
        guest.release()


def test_acquire_refuses_a_symlinked_slot_folder(state, tmp_path) -> None:
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    (state / "uml").mkdir(parents=True, mode=0o700)
    (state / "uml" / "slot0").symlink_to(target)
    with pytest.raises(UnsafePath, match=r"slot0: is a symbolic link") as raised:
        UmlGuest.acquire()
    assert isinstance(raised.value, VpnlabError) and "VPNLAB_STATE_DIR" in str(raised.value)
    assert list(target.iterdir()) == []


def test_acquire_refuses_a_group_writable_state_folder(state) -> None:
    state.mkdir(mode=0o700)
    state.chmod(0o770)
    with pytest.raises(UnsafePath, match=r"writable by group or others \(mode 770\)") as raised:
        UmlGuest.acquire()
    assert f"chmod go-w {state}" in str(raised.value)
    assert not (state / "uml").exists()


@AS_ROOT
def test_acquire_refuses_a_state_folder_another_user_owns(state) -> None:
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    with pytest.raises(UnsafePath, match=rf"is owned by uid {NOBODY}, not by this user"):
        UmlGuest.acquire()
    assert not (state / "uml").exists()


@AS_ROOT
def test_running_slots_refuses_a_foreign_slot_root(state) -> None:
    (state / "uml").mkdir(parents=True, mode=0o700)
    os.chown(state / "uml", NOBODY, NOBODY)
    with pytest.raises(UnsafePath, match="is owned by uid"):
        running_slots()


# --- files: never written through a link; the disk image is 0600 and made here ---------------


def test_writing_refuses_a_planted_link_and_leaves_its_target_alone(tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    planted = tmp_path / "init.sh"
    planted.symlink_to(victim)
    with pytest.raises(UnsafePath, match="init.sh: is a symbolic link"):
        write_file(planted, "#!/bin/sh\n")
    assert victim.read_text() == "precious"


def test_writing_refuses_a_fifo_without_hanging(tmp_path) -> None:
    os.mkfifo(tmp_path / "status")
    with pytest.raises(UnsafePath, match="is not a regular file"):
        write_file(tmp_path / "status", "running")


def test_a_new_disk_image_is_private_and_formatted(tmp_path) -> None:
    disk = tmp_path / "disk.img"
    prepare_disk(disk, 16 << 20)
    assert stat.S_IMODE(disk.stat().st_mode) == 0o600
    assert subprocess.run(["dumpe2fs", "-h", str(disk)], capture_output=True).returncode == 0


def test_an_old_disk_image_is_made_private_not_reformatted(tmp_path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"engine data")
    disk.chmod(0o644)  # as `truncate` left it before
    prepare_disk(disk, 16 << 20)
    assert stat.S_IMODE(disk.stat().st_mode) == 0o600 and disk.read_bytes() == b"engine data"


def test_mkfs_never_runs_on_a_linked_disk_image(tmp_path) -> None:
    victim = tmp_path / "victim.img"
    victim.write_bytes(b"\0" * 4096)
    (tmp_path / "disk.img").symlink_to(victim)
    with pytest.raises(UnsafePath, match="disk.img: is a symbolic link"):
        prepare_disk(tmp_path / "disk.img", 16 << 20)
    assert victim.read_bytes() == b"\0" * 4096


def test_prepared_slot_files_are_not_written_through_links(state, tmp_path, monkeypatch) -> None:
    ok, why = uml.uml_available()
    if not ok:
        pytest.skip(why)
    monkeypatch.setattr(uml, "DISK_SIZE", 16 << 20)
    monkeypatch.setattr(uml, "guest_identity", lambda: None)  # no host user made by a unit test
    guest = UmlGuest.acquire()
    try:
        guest._prepare_files()
        assert stat.S_IMODE(guest.slot.disk.stat().st_mode) == 0o600
        victim = tmp_path / "victim"
        victim.write_text("precious")
        (guest.slot.path / "launch.sh").unlink()
        (guest.slot.path / "launch.sh").symlink_to(victim)
        with pytest.raises(UnsafePath, match="launch.sh: is a symbolic link"):
            guest._prepare_files()
        assert victim.read_text() == "precious"
    finally:
        guest.release()


def test_a_kernel_thread_with_its_right_start_time_is_never_taken_for_a_guest(tmp_path) -> None:
    # kthreadd (PID 2) shows no arguments, as a guest caught in exec briefly does: only a user
    # process may be taken for a guest on that ground
    slot = slot_in(tmp_path / "slot0")
    slot.pid_file.write_text(f"2 {process_start_time(2)}\n")
    assert slot.identify()[0] is None


def test_a_log_the_guest_filled_is_read_from_its_end_only(tmp_path: Path) -> None:
    from lab.runtime.uml_slot import TAIL_BYTES, read_text

    console = tmp_path / "console.log"  # the guest's console: root in the guest decides its size
    console.write_bytes(b"x" * (TAIL_BYTES * 4) + b"\nthe last line\n")
    text = read_text(console)
    assert len(text) == TAIL_BYTES and text.endswith("the last line\n")
