"""A User-Mode Linux guest that runs the lab's Docker engine on a full kernel.

Why: PPP, L2TP and kernel ESP are missing from many hosts' kernels (this
project's own machines among them). Debian's UML kernel has them and runs as
an ordinary process. Each guest lives in a *slot* folder of the state
directory: its disk image (the engine's data root, so images persist between
runs), its logs, and the unix socket through which the host's docker SDK
reaches the guest's engine. The guest sees the host's files read-only, and its kernel
runs as an unprivileged host user (lab.runtime.uml_guest_dir) when vpnlab is root.

A guest is started in its own network namespace (see templates/uml/launch.sh.j2)
and stopped by a halt flag its init watches, then by killing its process group.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import docker.errors
import requests

from lab.errors import PrerequisiteError, VpnlabError
from lab.runtime.uml_guest_dir import (
    adopt_old_disk, fresh_subfolder, guest_folder, guest_identity, mounts_root, prepare_disk, remove_entry,
    write_new,
)
from lab.runtime.uml_slot import (
    Slot, UnsafePath, open_no_follow, private_dir, read_text, state_dir, write_file,
)
from lab.runtime.uml_slot import log as slot_log  # one logger ("vpnlab.uml") for slots and guests

__all__ = ["Slot", "UmlGuest", "prepare_disk", "running_slots", "state_dir", "uml_available"]

KERNEL = Path("/usr/bin/linux.uml")
MODULES_ROOT = Path("/usr/lib/uml/modules")
DISK_SIZE = 16 << 30  # bytes, sparse; holds the engine's images and containers
MEMORY = "2G"
ENGINE_PORT = 2375
BOOT_TIMEOUT = 90.0
HALT_TIMEOUT = 20.0
# Loaded at boot: device nodes appear only once their module is loaded, nf_nat_pptp is
# never loaded on demand, and iptables-legacy in a container cannot load its tables.
# These the lab always needs; each protocol and router helper adds its own (guest_modules()).
BASE_MODULES = [
    "tun", "veth", "bridge", "overlay", "ip_tables", "iptable_filter", "iptable_nat", "iptable_raw",
    "iptable_mangle", "xt_comment", "xt_conntrack", "xt_MASQUERADE", "xt_tcpudp", "sch_netem",
]


def guest_modules() -> list[str]:
    """The base modules, every registered protocol's and every router helper's, once each."""
    from lab.protocols import PROTOCOLS
    from lab.router.helpers import helper_modules

    protocols = [m for p in PROTOCOLS.values() for m in p.guest_modules]
    return list(dict.fromkeys([*BASE_MODULES, *protocols, *helper_modules()]))


def guest_warmup() -> list[str]:
    """Every registered protocol's boot-time warm-up commands, once each."""
    from lab.protocols import PROTOCOLS

    return list(dict.fromkeys(c for p in PROTOCOLS.values() for c in p.guest_warmup))


GUEST_TOOLS = ["unshare", "setpriv", "socat", "ip", "mkfs.ext4", "dockerd", "containerd"]


class GuestError(VpnlabError):
    """Something in the guest failed; the message names the log to read."""

    ROOT_LOGS = ("launch.log", "console.log", "socat.log")  # written by the launch script (root), not the guest

    def __init__(self, slot: Slot, what: str, log: str):
        self.slot = slot.path
        self.log = log
        tail = ""
        # the log named, else the launch script's own (a guest that never started writes nothing)
        for name in dict.fromkeys((log, "launch.log")):
            path = slot.path / "logs" / name if name in self.ROOT_LOGS else slot.guest_dir / "logs" / name
            try:  # the guest writes its logs: read without following a link it may have planted
                text = read_text(path) if name in self.ROOT_LOGS else slot.read_guest_file(f"logs/{name}")
                tail = "\n".join(text.splitlines()[-15:])
            except (OSError, UnsafePath):
                continue
            if tail.strip():
                break
        super().__init__(f"User-Mode Linux guest ({slot.path.name}): {what}\n--- {path} (last lines) ---\n{tail}",
                         hint=f"the guest's logs are in {slot.guest_dir / 'logs'}, its launch's in {slot.path / 'logs'}")


def kernel_release() -> str | None:
    if not MODULES_ROOT.is_dir():
        return None
    releases = sorted(p.name for p in MODULES_ROOT.iterdir() if p.is_dir())
    return releases[-1] if releases else None


def uml_available() -> tuple[bool, str]:
    """Whether this host can run the UML runtime, and if not, what is missing."""
    if not KERNEL.exists():
        return False, f"{KERNEL} is missing (install Debian's 'user-mode-linux' package)"
    if kernel_release() is None:
        return False, f"no kernel modules under {MODULES_ROOT} (reinstall 'user-mode-linux')"
    missing = [tool for tool in GUEST_TOOLS if shutil.which(tool) is None]
    if missing:
        return False, "missing tools: " + ", ".join(missing) + " (ci/install.sh installs them)"
    if not Path("/dev/net/tun").exists():
        return False, "/dev/net/tun is missing on the host (the guest's only link is a tap device)"
    return True, f"{KERNEL} (Linux {kernel_release()})"


class UmlGuest:
    """Boot, reach and stop one guest."""

    def __init__(self, slot: Slot):
        self.slot = slot
        self._lock_fd: int | None = None

    # --- slot ownership ------------------------------------------------------

    @classmethod
    def acquire(cls, wait: bool = False) -> UmlGuest:
        """The first slot no other vpnlab process holds (several guests use several cores)."""
        root = private_dir(private_dir(state_dir()) / "uml", tighten=True)
        for index in range(16):
            slot = Slot(private_dir(root / f"slot{index}", tighten=True), index)
            guest = cls(slot)
            if guest.try_lock(blocking=wait and index == 0):
                return guest
        raise PrerequisiteError("User-Mode Linux", "all 16 guest slots are in use", hint="wait for other runs")

    def try_lock(self, blocking: bool = False) -> bool:
        """Take this slot for this process (a lock file); False if another process holds it."""
        fd = open_no_follow(self.slot.path / "lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- lifecycle -----------------------------------------------------------

    def client(self, timeout: int = 300) -> docker.DockerClient:
        return docker.DockerClient(base_url=f"unix://{self.slot.socket}", timeout=timeout)

    def engine_answers(self) -> bool:
        if not self.slot.socket.exists():
            return False
        try:
            return bool(self.client(timeout=5).ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
            return False

    def ensure_running(self, progress=lambda _: None) -> float:
        """Boot the guest unless it already answers; returns the seconds spent booting."""
        if self.slot.running() and self.engine_answers():
            return 0.0
        self.stop()
        ok, why = uml_available()
        if not ok:
            raise PrerequisiteError("User-Mode Linux runtime", why)
        progress(f"booting User-Mode Linux guest ({self.slot.path.name})")
        started = time.monotonic()
        self._prepare_files()
        launched = self._launch()
        deadline = started + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.slot.status().startswith("failed"):
                raise GuestError(self.slot, self.slot.status(), "guest.log")
            # our own child: asked directly (its command line is briefly empty while it execs)
            if launched.poll() is not None:
                raise GuestError(self.slot, f"the guest exited while booting (exit {launched.returncode})",
                                 "console.log")
            if self.slot.status() == "running" and self.engine_answers():
                return time.monotonic() - started
            time.sleep(0.25)
        self.stop()
        raise GuestError(self.slot, f"engine not ready within {BOOT_TIMEOUT:.0f} s", "dockerd.log")

    def _prepare_files(self) -> None:
        slot = self.slot
        private_dir(slot.path, tighten=True)  # checked again: it may have changed since acquire()
        private_dir(slot.path / "logs", tighten=True)  # the launch script's logs (root's)
        for log in (slot.path / "logs").iterdir():
            log.unlink()
        identity = guest_identity()  # the guest's own user when root, else None (the caller)
        guest_folder(slot.guest_dir, identity)
        for name in ("logs", "uml"):
            fresh_subfolder(slot.guest_dir, name, identity)
        for name in ("halt", "status", "modules-failed"):
            remove_entry(slot.guest_dir / name)
        adopt_old_disk(slot.path / "disk.img", slot.disk)
        prepare_disk(slot.disk, DISK_SIZE, identity)
        host_ip, guest_ip = "169.254.64.1", "169.254.64.2"
        from lab.render import render  # jinja2: only when a guest boots

        init = render("uml/init.sh.j2", modules_dir=MODULES_ROOT / str(kernel_release()), modules=guest_modules(),
                      warmup=guest_warmup(), slot_dir=slot.guest_view, guest_ip=guest_ip, engine_port=ENGINE_PORT)
        launch = render(
            "uml/launch.sh.j2", host_ip=host_ip, guest_ip=guest_ip, engine_port=ENGINE_PORT, tap="vpnlab-tap",
            socket=slot.socket, kernel=KERNEL, memory=MEMORY, slot_dir=slot.path, guest_dir=slot.guest_dir,
            guest_view=slot.guest_view, mounts=mounts_root() if identity else None, identity=identity,
        )
        write_new(slot.guest_dir / "init.sh", init, 0o755)  # root's file, read by the guest as its PID 1
        write_file(slot.launch_script, launch, 0o755)  # root's folder: root runs it

    def _launch(self) -> subprocess.Popen[bytes]:
        # root: a mount namespace of the guest's own too, where its folder is bind-mounted (launch.sh)
        namespace = (["unshare", "--net", "--mount", "--propagation", "private"] if os.geteuid() == 0
                     else ["unshare", "--user", "--map-root-user", "--net"])
        launch_log = open_no_follow(self.slot.path / "logs" / "launch.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            process = subprocess.Popen(
                [*namespace, "sh", str(self.slot.launch_script)],  # identify() looks for this argument
                stdin=subprocess.DEVNULL,
                stdout=launch_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills the whole guest
                close_fds=True,
            )
        finally:
            os.close(launch_log)
        self.slot.record_guest(process.pid)
        return process

    def stop(self) -> None:
        """Halt the guest cleanly (flag), then kill whatever is left of its process group.

        Only a guest identify() recognises is signalled: a PID reused by another process after a
        crash or reboot is left alone (and logged). Once the guest's group leader has exited, its
        PID stays reserved while any member of its group lives, so killpg reaches only the guest."""
        _reap_if_child(self.slot)
        pid = self.slot.guest_pid()
        if pid is None:
            self.slot.forget_stale_guest()
            _end_leftovers(self.slot)
            return
        try:
            if self.slot.guest_dir.is_dir():  # in the guest's folder, never through its links
                write_new(self.slot.guest_dir / "halt", "", 0o644)
            else:  # a guest booted by vpnlab before guests had a folder of their own watches the slot
                write_file(self.slot.path / "halt", "")
        except (OSError, UnsafePath) as exc:  # e.g. a folder the guest put there: it is killed below
            slot_log.warning("%s: no halt flag (%s); killing the guest", self.slot.path, exc)
        deadline = time.monotonic() + HALT_TIMEOUT
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        _reap(pid)
        _end_leftovers(self.slot)
        self.slot.pid_file.unlink(missing_ok=True)
        self.slot.socket.unlink(missing_ok=True)

    def stopped_why(self, wait: float = 5.0) -> str | None:
        """Why the guest is gone, or None while it runs. Asked after a call to its engine failed:
        the kernel dies a moment before its launch script (then the slot's guest) exits."""
        deadline = time.monotonic() + wait
        while True:
            code = _exit_code_if_child(self.slot)
            if code is not None or not self.slot.running():
                break
            if time.monotonic() >= deadline or self.engine_answers():
                return None
            time.sleep(0.2)
        if code is not None and code > 128:  # the launch script passes on the kernel's exit status
            return f"the guest stopped under the lab: its kernel was killed by {signal.Signals(code - 128).name}"
        return "the guest stopped under the lab" + (f" (its kernel exited with {code})" if code else "")

    def modules_failed(self) -> list[str]:
        try:
            return self.slot.read_guest_file("modules-failed").split()
        except (OSError, UnsafePath):
            return []


def _end_leftovers(slot: Slot) -> None:
    """Kill what is left of a slot's guest once its launch script is gone (a guest whose leader
    died, or one from a killed vpnlab): found by the slot's paths in their command lines,
    never by a PID file alone; waits until none holds the disk image any more."""
    deadline = time.monotonic() + 10
    while (leftovers := slot.processes()) and time.monotonic() < deadline:
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)
        time.sleep(0.2)
    if leftovers:
        slot_log.warning("%s: guest processes %s did not exit", slot.path, leftovers)


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap_if_child(slot: Slot) -> None:
    """Reap the guest's leader if it exited as this process's child (a zombie is no guest)."""
    try:
        pid = int(read_text(slot.pid_file).split()[0])
    except (OSError, UnsafePath, ValueError, IndexError):
        return
    _reap(pid)


def _exit_code_if_child(slot: Slot) -> int | None:
    """The exit code of the guest's leader if it exited as this process's child (reaped here)."""
    try:
        pid = int(read_text(slot.pid_file).split()[0])
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except (OSError, UnsafePath, ValueError, IndexError):
        return None
    return os.waitstatus_to_exitcode(status) if reaped == pid else None


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def running_slots() -> list[Slot]:
    root = state_dir() / "uml"
    if not root.is_dir():
        return []
    private_dir(private_dir(state_dir()) / "uml")  # refused, like acquire(), if not this user's alone
    slots = [Slot(p, int(p.name[4:])) for p in sorted(root.glob("slot*")) if p.name[4:].isdigit()]
    return [s for s in slots if s.running()]
