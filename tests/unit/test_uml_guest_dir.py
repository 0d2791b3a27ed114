"""The UML guest's own folder: given to the guest's user, and never a way for that user to make
root (vpnlab) write, read or format anything outside it. Real folders and files; no guest boots.
As root, a folder can be given to another uid (65534 stands in for vpnlab's guest user)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lab.runtime import uml
from lab.runtime.uml import UmlGuest
from lab.runtime.uml_guest_dir import adopt_old_disk, fresh_subfolder, guest_folder, prepare_disk, write_new
from lab.runtime.uml_slot import GUEST_MOUNTS, Slot, UnsafePath, read_beneath

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another uid needs root")
GUEST = (65534, 65534)


@AS_ROOT
def test_the_guest_folder_is_made_private_to_the_guest_user(tmp_path: Path) -> None:
    folder = guest_folder(tmp_path / "guest", GUEST)
    info = folder.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (*GUEST, 0o700)
    fresh_subfolder(folder, "logs", GUEST)
    assert (folder / "logs").stat().st_uid == GUEST[0]


@AS_ROOT
def test_a_guest_folder_of_a_third_user_or_a_link_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 1234, 1234)
    with pytest.raises(UnsafePath, match="is owned by uid 1234, not by the guest's user"):
        guest_folder(foreign, GUEST)
    (tmp_path / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(UnsafePath, match="linked: is a symbolic link"):
        guest_folder(tmp_path / "linked", GUEST)
    assert (tmp_path / "elsewhere").stat().st_uid == os.geteuid()


def test_emptying_a_log_folder_swapped_for_a_link_leaves_its_target_alone(tmp_path: Path) -> None:
    guest = guest_folder(tmp_path / "guest", None)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    (guest / "logs").symlink_to(victim, target_is_directory=True)
    fresh_subfolder(guest, "logs", None)
    assert (victim / "precious").read_text() == "keep"
    assert (guest / "logs").is_dir() and not (guest / "logs").is_symlink()


def test_root_writes_a_new_file_never_through_a_planted_link_or_hard_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    guest = guest_folder(tmp_path / "guest", None)
    (guest / "halt").symlink_to(victim)
    os.link(victim, guest / "init.sh")
    write_new(guest / "halt", "", 0o644)
    write_new(guest / "init.sh", "#!/bin/sh\n", 0o755)
    assert victim.read_text() == "precious"
    assert (guest / "init.sh").read_text() == "#!/bin/sh\n" and not (guest / "halt").is_symlink()


def test_guest_files_are_read_without_following_a_link_at_any_level(tmp_path: Path) -> None:
    guest = guest_folder(tmp_path / "guest", None)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "guest.log").write_text("root's secret")
    (guest / "logs").symlink_to(secret, target_is_directory=True)
    with pytest.raises(OSError):
        read_beneath(guest, "logs/guest.log")
    (guest / "status").symlink_to(secret / "guest.log")
    with pytest.raises(UnsafePath, match="is a symbolic link"):
        read_beneath(guest, "status")
    (guest / "logs").unlink()
    (guest / "logs").mkdir()
    (guest / "logs" / "guest.log").write_text("x" * 100 + "the end")
    assert read_beneath(guest, "logs/guest.log", limit=7) == "the end"  # only the tail of a huge log


@AS_ROOT
def test_a_disk_image_is_the_guest_users_and_private(tmp_path: Path) -> None:
    prepare_disk(tmp_path / "disk.img", 16 << 20, GUEST)
    info = (tmp_path / "disk.img").stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (GUEST[0], 0o600)
    old = tmp_path / "old.img"
    old.write_bytes(b"engine data")  # root's, as vpnlab left it before guests had a user: handed over
    prepare_disk(old, 16 << 20, GUEST)
    assert old.stat().st_uid == GUEST[0] and old.read_bytes() == b"engine data"


def test_a_hard_linked_disk_image_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"not a disk")
    os.link(victim, tmp_path / "disk.img")
    with pytest.raises(UnsafePath, match="has other hard links"):
        prepare_disk(tmp_path / "disk.img", 16 << 20)
    assert victim.read_bytes() == b"not a disk"


def test_an_old_slot_disk_is_adopted_but_never_a_link(tmp_path: Path) -> None:
    slot = tmp_path / "slot0"
    slot.mkdir()
    guest = guest_folder(slot / "guest", None)
    (slot / "disk.img").write_bytes(b"images")
    adopt_old_disk(slot / "disk.img", guest / "disk.img")
    assert (guest / "disk.img").read_bytes() == b"images" and not (slot / "disk.img").exists()
    (guest / "disk.img").unlink()
    (slot / "disk.img").symlink_to(tmp_path / "victim")
    adopt_old_disk(slot / "disk.img", guest / "disk.img")
    assert not (guest / "disk.img").exists()


def test_the_guest_kernel_is_known_by_its_view_of_the_guest_folder(tmp_path: Path) -> None:
    slot = Slot(tmp_path / "slot0", 0)
    view = GUEST_MOUNTS / slot.guest_dir.relative_to("/")
    nap = (sys.executable, "-c", "import time; time.sleep(60)")
    kernel = subprocess.Popen([*nap, "linux.uml", f"init={view}/init.sh", f"ubd0={view}/disk.img"])
    other = subprocess.Popen([*nap, "linux.uml", f"ubd0={GUEST_MOUNTS}{tmp_path}/slot1/guest/disk.img"])
    try:
        assert slot.processes() == [kernel.pid] and slot.kernel_processes() == [kernel.pid]
    finally:
        for proc in (kernel, other):
            proc.kill()
            proc.wait()


@AS_ROOT
def test_as_root_the_guest_kernel_is_started_as_the_guest_user(tmp_path, monkeypatch) -> None:
    ok, why = uml.uml_available()
    if not ok:
        pytest.skip(why)
    monkeypatch.setenv("VPNLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(uml, "DISK_SIZE", 16 << 20)
    monkeypatch.setattr(uml, "guest_identity", lambda: GUEST)
    guest = UmlGuest.acquire()
    try:
        guest._prepare_files()
        slot = guest.slot
        assert slot.guest_dir.stat().st_uid == GUEST[0] and slot.disk.stat().st_uid == GUEST[0]
        launch = slot.launch_script.read_text()
        assert f"setpriv --reuid={GUEST[0]} --regid={GUEST[1]} --clear-groups --no-new-privs" in launch
        assert f"user {GUEST[0]} group {GUEST[1]}" in launch and f"ubd0={slot.guest_view}/disk.img" in launch
        assert f"mount --bind {slot.guest_dir} {slot.guest_view}" in launch
        assert f"-o {slot.guest_view}" in (slot.guest_dir / "init.sh").read_text()
        assert (slot.guest_dir / "init.sh").stat().st_uid == 0  # root's file: the guest may not change it
    finally:
        guest.release()


def test_a_folder_planted_as_the_halt_flag_does_not_keep_the_guest_alive(tmp_path, monkeypatch) -> None:
    slot = Slot(tmp_path / "slot0", 0)
    slot.path.mkdir(mode=0o700)
    (slot.guest_dir / "halt").mkdir(parents=True)  # the guest's user owns the folder: it can do this
    guest = subprocess.Popen(["sh", "-c", "sleep 60", str(slot.launch_script)], start_new_session=True)
    try:
        slot.record_guest(guest.pid)
        monkeypatch.setattr(uml, "HALT_TIMEOUT", 0.5)
        UmlGuest(slot).stop()
        assert guest.wait(timeout=5) is not None and not slot.running()
    finally:
        guest.kill()
        guest.wait()


@AS_ROOT
def test_the_guest_user_is_made_on_first_use_and_never_root(monkeypatch) -> None:
    from types import SimpleNamespace

    from lab.errors import PrerequisiteError
    from lab.runtime import uml_guest_dir

    users: dict[str, SimpleNamespace] = {}
    calls: list[list[str]] = []

    def getpwnam(name: str) -> SimpleNamespace:
        return users[name]

    def useradd(argv: list[str], **_: object) -> SimpleNamespace:
        calls.append(argv)
        users[argv[-1]] = SimpleNamespace(pw_uid=998, pw_gid=997)
        return SimpleNamespace(returncode=0, stderr="")

    monkeypatch.setattr(uml_guest_dir.pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(uml_guest_dir.subprocess, "run", useradd)
    assert uml_guest_dir.guest_identity() == (998, 997)
    assert calls[0][:2] == ["useradd", "--system"] and calls[0][-1] == "vpnlab-guest"
    assert uml_guest_dir.guest_identity() == (998, 997) and len(calls) == 1  # made once
    users["vpnlab-guest"] = SimpleNamespace(pw_uid=0, pw_gid=0)
    with pytest.raises(PrerequisiteError, match="uid or gid 0"):
        uml_guest_dir.guest_identity()
