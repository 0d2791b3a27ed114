"""A User-Mode Linux guest's slot folder, checked before it is trusted, and its guest, known by more than a PID.

Why: vpnlab usually runs as root, and the slot folders live under a state
directory the environment chooses (``VPNLAB_STATE_DIR``, ``XDG_STATE_HOME``,
``HOME``). A folder another user owns or can write to, a symbolic link planted
where vpnlab writes a file, or a PID that was reused after a crash or a reboot
would otherwise turn vpnlab's root writes and signals against the host. So:
folders are created 0700 and refused when foreign or group/other-writable,
files are written without following symbolic links, and a guest is
identified by its PID *and* its process start time *and* a command line that
names this slot's launch script; when any of them differs, the guest is gone
and nothing is signalled.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from lab.errors import VpnlabError

log = logging.getLogger("vpnlab.uml")

GUEST_MOUNTS = Path("/run/vpnlab-guest")  # where a guest's folder is bind-mounted (its mount namespace only)
TAIL_BYTES = 64 << 10  # a guest log may be as large as the guest makes it: only its end is read
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a planted FIFO cannot hang an open


class UnsafePath(VpnlabError):
    """A state folder or file vpnlab will not use: it names the path, the problem and the fix."""

    def __init__(self, path: Path, problem: str, fix: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}; vpnlab will not use it", hint=fix)


_OWN_FOLDER = ("set VPNLAB_STATE_DIR to a folder of your own, or remove it and let vpnlab make it "
               "(running as root, do not carry another user's HOME, XDG_STATE_HOME or VPNLAB_STATE_DIR "
               "into sudo with -E)")


def state_dir() -> Path:
    root = os.environ.get("VPNLAB_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "vpnlab"
    )
    return Path(root).absolute()  # absolute: a guest's command line is matched against its slot's path


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """``path`` as a folder of this user: made 0700 if missing; refused if a symbolic link, not a
    folder, owned by another user or writable by group or others. ``tighten``: chmod it to 0700."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(path, "is a symbolic link", _OWN_FOLDER)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(path, "is not a folder", _OWN_FOLDER)
    if info.st_uid != os.geteuid():
        raise UnsafePath(path, f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})", _OWN_FOLDER)
    if info.st_mode & 0o022:
        raise UnsafePath(path, f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})",
                         f"chmod go-w {path} (or chmod 700), if nobody else has written into it")
    if tighten and stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def _refuse_unless_regular(path: Path) -> None:
    """Nothing, or a regular file, may be at ``path``; a symbolic link, FIFO or device is refused."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(path, "is a symbolic link", f"remove it (vpnlab writes this file itself): rm {path}")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePath(path, "is not a regular file", f"remove it (vpnlab writes this file itself): rm {path}")


def open_no_follow(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open that refuses a symbolic link or anything but a regular file at ``path``."""
    _refuse_unless_regular(path)
    try:
        fd = os.open(path, flags | _NO_FOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link planted between the check and the open
            raise UnsafePath(path, "is a symbolic link", f"remove it: rm {path}") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(path, "is not a regular file", f"remove it: rm {path}")
    os.set_blocking(fd, True)
    return fd


def write_file(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Replace ``path``'s content, never through a symbolic link, leaving it at ``mode``."""
    fd = open_no_follow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, mode)
        out.write(data.encode() if isinstance(data, str) else data)


def read_text(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a file the guest writes or fills (status, logs, its console),
    read without following a symbolic link it may have planted: the guest decides how large it is."""
    with os.fdopen(open_no_follow(path, os.O_RDONLY), "rb") as source:
        size = os.fstat(source.fileno()).st_size
        if size > limit:
            source.seek(size - limit)
        return source.read(limit).decode(errors="replace")


def read_beneath(guest_dir: Path, relative: str, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a file the guest writes, opened below ``guest_dir`` without
    following a symbolic link at any level (the guest may swap a sub-folder for a link)."""
    *folders, name = relative.split("/")
    fd = os.open(guest_dir, _DIR_FLAGS)
    try:
        for folder in folders:
            inner = os.open(folder, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        try:
            file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(guest_dir / relative, "is a symbolic link", "the guest planted it") from None
            raise
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            raise UnsafePath(guest_dir / relative, "is not a regular file", "the guest planted it")
        size = os.fstat(file_fd).st_size
        source.seek(max(0, size - limit))
        return source.read(limit).decode(errors="replace")


# --- who the guest is ----------------------------------------------------------


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot): with the PID, names one process for good."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[22 - 3])


def process_execing(pid: int) -> bool:
    """Whether PID, showing no arguments, is a user process caught in exec: not a zombie (state Z
    or X: exited, not reaped) and not a kernel thread (parent 0 or kthreadd, PID 2)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state, parent = text[text.rindex(")") + 2:].split()[:2]
    return state not in ("Z", "X") and int(parent) not in (0, 2)


def process_arguments(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


@dataclass
class Slot:
    """One guest's folder; a slot is used by one vpnlab process at a time (a lock file)."""

    path: Path
    index: int

    @property
    def socket(self) -> Path:
        return self.path / "docker.sock"

    @property
    def guest_dir(self) -> Path:
        """The only folder the guest writes (its user's, 0700): disk image, logs, status, uml_dir."""
        return self.path / "guest"

    @property
    def guest_view(self) -> Path:
        """guest_dir as the guest's kernel sees it: bind-mounted under GUEST_MOUNTS when vpnlab is
        root (the guest's user cannot pass the state folder's parents), else the folder itself."""
        return GUEST_MOUNTS / self.guest_dir.relative_to("/") if os.geteuid() == 0 else self.guest_dir

    @property
    def disk(self) -> Path:
        return self.guest_dir / "disk.img"

    @property
    def pid_file(self) -> Path:
        return self.path / "guest.pid"

    @property
    def launch_script(self) -> Path:
        return self.path / "launch.sh"

    def read_guest_file(self, relative: str) -> str:
        """A file the guest writes (status, logs/NAME), never through a link at any level."""
        return read_beneath(self.guest_dir, relative)

    def status(self) -> str:
        try:
            return self.read_guest_file("status").strip()
        except (OSError, UnsafePath):
            return "stopped"

    def record_guest(self, pid: int) -> None:
        """Write guest.pid: the PID and its start time (see identify)."""
        write_file(self.pid_file, f"{pid} {process_start_time(pid)}\n")

    def identify(self) -> tuple[int | None, str]:
        """The guest's PID if guest.pid names a live process that is this slot's guest, else None
        and why not ("" when there is simply no guest)."""
        try:
            fields = read_text(self.pid_file).split()
            pid = int(fields[0])
            recorded = int(fields[1]) if len(fields) > 1 else None  # one field: written by vpnlab 0.x
        except (OSError, UnsafePath, ValueError, IndexError):
            return None, ""
        started = process_start_time(pid)
        if started is None:
            return None, ""
        if recorded is not None and started != recorded:
            return None, f"PID {pid} started at tick {started}, the guest at tick {recorded}: the PID was reused"
        arguments = process_arguments(pid)
        if arguments == [""] and recorded is not None and process_execing(pid):
            # caught between unshare and its exec of `sh launch.sh`: the kernel shows no arguments
            # while a process execs; its start time already matched (a zombie has none either)
            return pid, ""
        if str(self.launch_script) not in arguments:
            return None, f"PID {pid}'s command line does not name {self.launch_script}"
        return pid, ""

    def _guest_folders(self) -> set[Path]:
        """Where this slot's guest kernel may find its files: the bind-mounted view (root), the
        folder itself (not root), and the slot (guests booted before guests had a folder)."""
        return {GUEST_MOUNTS / self.guest_dir.relative_to("/"), self.guest_dir, self.path}

    def _disk_arguments(self) -> set[str]:
        return {f"ubd0={folder / 'disk.img'}" for folder in self._guest_folders()}

    def processes(self) -> list[int]:
        """PIDs of the processes whose command line names this slot's launch script, init script,
        disk image or engine socket: its guest's kernel and socat, whatever guest.pid says (they
        outlive a launch script that died, and hold the disk image a new guest must mount)."""
        exact = {str(self.launch_script), *self._disk_arguments(),
                 *(f"init={folder / 'init.sh'}" for folder in self._guest_folders())}
        socat = f"UNIX-LISTEN:{self.socket},"
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                arguments = process_arguments(int(entry.name))
                if any(a in exact or a.startswith(socat) for a in arguments):
                    found.append(int(entry.name))
        return found

    def kernel_processes(self) -> list[int]:
        """The guest's linux.uml processes (its kernel and the host processes of its userspace):
        those of processes() whose command line names the slot's disk image."""
        disk = self._disk_arguments()
        return [pid for pid in self.processes() if disk.intersection(process_arguments(pid))]

    def guest_pid(self) -> int | None:
        return self.identify()[0]

    def running(self) -> bool:
        return self.guest_pid() is not None

    def forget_stale_guest(self) -> None:
        """Drop a guest.pid that names no guest of this slot, saying so if its PID is someone else's."""
        _, why = self.identify()
        if why:
            log.warning("%s: %s; treating the guest as gone, signalling nothing", self.pid_file, why)
        self.pid_file.unlink(missing_ok=True)
