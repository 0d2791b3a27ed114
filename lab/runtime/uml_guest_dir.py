"""Who a User-Mode Linux guest is on the host, and the one folder it may write.

Why: the guest's kernel (``linux.uml``) does every hostfs access with its own
host identity. Run as root, root in the guest could remount the host's root
read-write and write any host file. So when vpnlab runs as root the kernel runs
as a dedicated unprivileged user (``vpnlab-guest``, made by ``vpnlab setup`` or
here on first use), and everything the guest must write (its disk image, its
logs and status, ``uml_dir``) is in ``slotN/guest``: a 0700 folder of that user
inside root's 0700 slot. That user cannot pass the state folder's parents (by
default ``/root``), so the launch script bind-mounts the folder, in a private
mount namespace of the guest's own, at ``/run/vpnlab-guest/<slot path>/guest``
(tmpfs, 0755 parents): the guest's kernel is the only process that sees it there.

Root still reads and writes a few files in that folder (``init.sh``, ``halt``,
``status``, the logs): it never follows a symbolic link at any level below the
folder, never truncates a file the guest could have linked elsewhere, and never
runs anything from it on the host.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from lab.errors import PrerequisiteError
from lab.runtime.uml_slot import GUEST_MOUNTS, UnsafePath, open_no_follow

GUEST_USER = "vpnlab-guest"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def guest_identity() -> tuple[int, int] | None:
    """(uid, gid) the guest's kernel runs as, or None when vpnlab is not root: the guest then
    runs as the calling user (in a user namespace), which already bounds it."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(GUEST_USER)
    except KeyError:
        _create_guest_user()
        entry = pwd.getpwnam(GUEST_USER)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise PrerequisiteError("User-Mode Linux runtime", f"the host user {GUEST_USER} has uid or gid 0",
                                hint=f"userdel {GUEST_USER}; vpnlab makes it again, unprivileged")
    return entry.pw_uid, entry.pw_gid


def _create_guest_user() -> None:
    """The same command lab/setup/machine.sh runs; a concurrent creation counts as success."""
    made = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "vpnlab User-Mode Linux guests", GUEST_USER],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        pwd.getpwnam(GUEST_USER)
    except KeyError:
        raise PrerequisiteError("User-Mode Linux runtime", f"cannot create the host user {GUEST_USER}: "
                                f"{made.stderr.strip() or made.returncode}",
                                hint="'vpnlab setup' creates it") from None


def mounts_root() -> Path:
    """The empty root-owned folder the launch script mounts its tmpfs on (made here, 0755)."""
    try:
        os.mkdir(GUEST_MOUNTS, 0o755)
    except FileExistsError:
        pass
    info = os.lstat(GUEST_MOUNTS)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise UnsafePath(GUEST_MOUNTS, "is not a folder of root's alone", f"remove it: rm -r {GUEST_MOUNTS}")
    return GUEST_MOUNTS


def guest_folder(path: Path, identity: tuple[int, int] | None) -> Path:
    """``path`` as the guest's own folder: made 0700 and given to the guest's user; refused if a
    symbolic link, not a folder, or owned by anyone else (root's, as a crash could leave it, is
    handed over). Without a dedicated user (not root) it is the caller's, like the slot."""
    uid, gid = identity or (os.geteuid(), os.getegid())
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, _DIR_FLAGS)  # O_NOFOLLOW: a link in its place is refused (ENOTDIR or ELOOP)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        what = "is a symbolic link" if os.path.islink(path) else "is not a folder"
        raise UnsafePath(path, what, f"remove it (vpnlab makes it again): rm {path}") from None
    try:
        info = os.fstat(fd)
        if info.st_uid not in (uid, os.geteuid()):
            raise UnsafePath(path, f"is owned by uid {info.st_uid}, not by the guest's user (uid {uid})",
                             f"remove it (vpnlab makes it again): rm -r {path}")
        os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


def remove_entry(path: Path) -> None:
    """Remove whatever the guest left at ``path`` (a file, a link itself, a folder with its content).
    Done while the guest is stopped: nothing of its user swaps it between lstat and removal."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)  # fd-based: never follows a link below
    else:
        path.unlink()  # a link is removed itself, its target untouched


def fresh_subfolder(guest_dir: Path, name: str, identity: tuple[int, int] | None) -> None:
    """``guest_dir/name`` as a new, empty folder of the guest's user."""
    remove_entry(guest_dir / name)
    guest_folder(guest_dir / name, identity)


def write_new(path: Path, data: str, mode: int) -> None:
    """Write ``path`` as a new root-owned file in the guest's folder: whatever was there (a link, a
    hard link to another file) is unlinked, never opened, and the new file is created exclusively."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise UnsafePath(path, "is a folder", f"remove it: rm -r {path}") from None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, mode)
        out.write(data.encode())


def adopt_old_disk(old: Path, new: Path) -> None:
    """Move a disk image from where vpnlab kept it before guests had a folder of their own (the
    slot) into the guest's folder, so its images are not loaded again; only a regular file."""
    if new.exists() or new.is_symlink():
        return
    try:
        fd = open_no_follow(old, os.O_RDONLY)
    except (FileNotFoundError, UnsafePath):
        return
    os.close(fd)
    os.rename(old, new)


def prepare_disk(disk: Path, size: int, identity: tuple[int, int] | None = None) -> None:
    """The engine's disk image, 0600 (its blocks hold the labs' keys) and the guest's user's
    (``identity``, else this user's): an existing regular file of that user (one of this user's is
    handed over), or a new sparse file formatted here; mkfs only ever sees the file just created."""
    uid, gid = identity or (os.geteuid(), os.getegid())
    try:
        fd = os.open(disk, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        fd = open_no_follow(disk, os.O_RDONLY)
        try:
            info = os.fstat(fd)
            if info.st_uid not in (uid, os.geteuid()):
                raise UnsafePath(disk, "is owned by another user", f"remove it (vpnlab makes a new one): rm {disk}")
            if info.st_nlink != 1:  # a hard link: the same blocks under another name, maybe not a disk
                raise UnsafePath(disk, "has other hard links", f"remove it (vpnlab makes a new one): rm {disk}")
            os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        return
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o600)  # whatever the umask
        os.ftruncate(fd, size)
        made = subprocess.run(  # through the open descriptor: the very file created above
            ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", f"/dev/fd/{fd}"],
            capture_output=True, text=True, pass_fds=(fd,), stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(fd)
    if made.returncode:
        disk.unlink(missing_ok=True)
        raise PrerequisiteError("mkfs.ext4", made.stderr.strip() or "failed to format the guest disk")
