"""One process at a time per lab name per engine: a lock file, flock'ed while a lab is built or run.

Why: every lab object is found by its ``vpnlab.lab`` label, so two processes bringing up the same
name on one engine would otherwise remove each other's half-made containers. The lock lives in the
state folder (``labs/<engine>/<name>.lock``, see lab.runtime.uml_slot.state_dir), made private and
opened without following links like the guests' slot files. The kernel drops an flock when its
process dies, even by SIGKILL, so a killed run never leaves a lock behind: only its containers,
which the next holder removes (and an empty lock file, which the next holder reuses). A holder
letting go removes its file, so the folder does not grow with every lab name ever used. A lab kept by ``vpnlab up`` is guarded by its ``up`` owner label
once built (the lock is let go then); see DockerLab.prepare.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
import weakref
from pathlib import Path

import docker

from lab.errors import VpnlabError
from lab.runtime.uml_slot import open_no_follow, private_dir, state_dir

RELOCK_TRIES = 5  # opens of a lock file another holder removed as it let go (each one a race lost)
_held: dict[tuple[str, str], int] = {}  # (engine key, lab name) -> the flock'ed descriptor
_held_guard = threading.Lock()
_engine_keys: weakref.WeakKeyDictionary[docker.DockerClient, str] = weakref.WeakKeyDictionary()


class LabInUse(VpnlabError):
    """Another vpnlab process (or a lab kept by 'vpnlab up') holds the lab's name; nothing of it was touched."""

    def __init__(self, name: str, holder: str):
        self.name = name
        self.holder = holder
        super().__init__(
            f"lab '{name}' is in use: {holder}; nothing of it was touched",
            hint=f"wait for that run to end, or run 'vpnlab down {name}' to remove the lab, "
            f"or give this topology another name",
        )


class StateUnusable(VpnlabError):
    """The state folder cannot hold a lab's lock file."""

    def __init__(self, path: Path, why: str):
        self.path = path
        super().__init__(
            f"cannot keep the lab lock in {path}: {why}",
            hint="set VPNLAB_STATE_DIR to a writable folder of your own (it holds one small lock file per lab)",
        )


def this_owner(mode: str) -> str:
    """Who holds a lab: 'up' (kept until 'down') or 'run:<host>:<pid>' (torn down by that process)."""
    return "up" if mode == "up" else f"run:{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool:
    """Whether a lab's 'run:<host>:<pid>' owner may still be running (another host's: assumed so)."""
    if not owner.startswith("run:"):
        return True
    _, host, pid = owner.split(":", 2)
    if host != socket.gethostname():
        return True  # cannot tell from here: assume it is in use
    if pid == str(os.getpid()):
        return False  # this process, holding the name's lock: what it left is its own to replace
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def engine_key(client: docker.DockerClient) -> str:
    """A file name for the engine: a hash of its ID (the same engine by any URL, another guest's differs)."""
    key = _engine_keys.get(client)
    if key is None:
        info = client.info()
        key = hashlib.sha256(str(info.get("ID") or info.get("Name") or "").encode()).hexdigest()[:16]
        _engine_keys[client] = key
    return key


def lock_path(client: docker.DockerClient, name: str) -> Path:
    """The lock file of lab ``name`` on ``client``'s engine, its folders made private (0700)."""
    folder = state_dir()
    try:
        folder = private_dir(folder)
        folder = private_dir(folder / "labs")
        folder = private_dir(folder / engine_key(client))
    except OSError as exc:
        raise StateUnusable(folder, exc.strerror or str(exc)) from None
    return folder / f"{name}.lock"  # names are [a-z0-9-] (checked by the topology model)


def claim(client: docker.DockerClient, name: str) -> None:
    """Hold lab ``name`` on this engine for this process until ``release``.

    Raises:
        LabInUse: another process holds it (this one too, from another thread).
        StateUnusable / UnsafePath: the lock file cannot be made or is not a plain file of this user.
    """
    key = (engine_key(client), name)
    with _held_guard:
        if key in _held:
            raise LabInUse(name, f"this process is already using it (pid {os.getpid()})")
        fd = _locked(name, client)
        _held[key] = fd
    _write_holder(fd)


def _locked(name: str, client: docker.DockerClient) -> int:
    """The flock'ed descriptor of the lab's lock file. A holder removes the file as it lets go,
    so a file opened just before that is no longer the lock: it is opened again until the
    locked file is the one the path names."""
    for _ in range(RELOCK_TRIES):
        path = lock_path(client, name)
        try:
            fd = open_no_follow(path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StateUnusable(path.parent, exc.strerror or str(exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LabInUse(name, f"another vpnlab process is running it ({holder})" if holder
                           else "another vpnlab process is running it") from None
        if _names(path, fd):
            return fd
        os.close(fd)  # removed by the holder that let go before this flock: not the lock any more
    raise StateUnusable(lock_path(client, name).parent, "its lock file kept being removed while it was opened")


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def release(client: docker.DockerClient, name: str) -> None:
    """Let go of lab ``name`` on this engine if this process holds it: the lock file is removed
    while still locked, and closing it drops the flock; so the state folder keeps no file per
    lab ever run (see _locked for the other side). The engine's folder stays: removing it would
    race a claim making it (one small folder per engine)."""
    with _held_guard:  # held to the close: another thread's claim of the name waits for it
        if not any(held_name == name for _, held_name in _held):
            return  # nothing to look up: no engine call for a lab this process never held
        key = (engine_key(client), name)
        fd = _held.pop(key, None)
        if fd is None:
            return
        path = state_dir() / "labs" / key[0] / f"{name}.lock"
        try:
            if _names(path, fd):
                path.unlink()
        except OSError:
            pass  # kept: an empty file does no harm, the next holder reuses it
        finally:
            os.close(fd)


def _write_holder(fd: int) -> None:
    """Who holds the lock, for the message another process shows; best effort (a full disk still locks)."""
    text = f"pid {os.getpid()} on {socket.gethostname()}\n".encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
    except OSError:
        pass


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
