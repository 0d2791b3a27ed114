"""A User-Mode Linux guest that runs the lab's Docker engine on a full kernel.

Why: PPP, L2TP and kernel ESP are missing from many hosts' kernels (this
project's own machines among them). Debian's UML kernel has them and runs as
an ordinary process. Each guest lives in a *slot* folder of the state
directory: its disk image (the engine's data root, so images persist between
runs), its logs, and the unix socket through which the host's docker SDK
reaches the guest's engine. The guest sees the host's files read-only.

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
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests

from lab.errors import PrerequisiteError, VpnlabError

KERNEL = Path("/usr/bin/linux.uml")
MODULES_ROOT = Path("/usr/lib/uml/modules")
DISK_SIZE = "16G"  # sparse; holds the engine's images and containers
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


GUEST_TOOLS = ["unshare", "socat", "ip", "mkfs.ext4", "dockerd", "containerd"]


class GuestError(VpnlabError):
    """Something in the guest failed; the message names the log to read."""

    def __init__(self, slot: Path, what: str, log: str):
        self.slot = slot
        self.log = log
        tail = ""
        path = slot / "logs" / log
        if path.exists():
            tail = "\n".join(path.read_text(errors="replace").splitlines()[-15:])
        super().__init__(f"User-Mode Linux guest ({slot.name}): {what}\n--- {path} (last lines) ---\n{tail}",
                         hint=f"all guest logs are in {slot / 'logs'}")


def state_dir() -> Path:
    root = os.environ.get("VPNLAB_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "vpnlab"
    )
    return Path(root)


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


@dataclass
class Slot:
    """One guest's folder; a slot is used by one vpnlab process at a time (a lock file)."""

    path: Path
    index: int

    @property
    def socket(self) -> Path:
        return self.path / "docker.sock"

    @property
    def disk(self) -> Path:
        return self.path / "disk.img"

    @property
    def pid_file(self) -> Path:
        return self.path / "guest.pid"

    def status(self) -> str:
        try:
            return (self.path / "status").read_text().strip()
        except OSError:
            return "stopped"

    def guest_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        return self.guest_pid() is not None


class UmlGuest:
    """Boot, reach and stop one guest."""

    def __init__(self, slot: Slot):
        self.slot = slot
        self._lock_fd: int | None = None

    # --- slot ownership ------------------------------------------------------

    @classmethod
    def acquire(cls, wait: bool = False) -> UmlGuest:
        """The first slot no other vpnlab process holds (several guests use several cores)."""
        root = state_dir() / "uml"
        for index in range(16):
            slot = Slot(root / f"slot{index}", index)
            slot.path.mkdir(parents=True, exist_ok=True)
            guest = cls(slot)
            if guest.try_lock(blocking=wait and index == 0):
                return guest
        raise PrerequisiteError("User-Mode Linux", "all 16 guest slots are in use", hint="wait for other runs")

    def try_lock(self, blocking: bool = False) -> bool:
        """Take this slot for this process (a lock file); False if another process holds it."""
        fd = os.open(self.slot.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
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
        self._launch()
        deadline = started + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.slot.status().startswith("failed"):
                raise GuestError(self.slot.path, self.slot.status(), "guest.log")
            if self.slot.guest_pid() is None:
                raise GuestError(self.slot.path, "the guest exited while booting", "console.log")
            if self.slot.status() == "running" and self.engine_answers():
                return time.monotonic() - started
            time.sleep(0.25)
        self.stop()
        raise GuestError(self.slot.path, f"engine not ready within {BOOT_TIMEOUT:.0f} s", "dockerd.log")

    def _prepare_files(self) -> None:
        slot = self.slot
        (slot.path / "logs").mkdir(exist_ok=True)
        (slot.path / "uml").mkdir(exist_ok=True)
        for name in ("halt", "status", "modules-failed"):
            (slot.path / name).unlink(missing_ok=True)
        for log in (slot.path / "logs").iterdir():
            log.unlink()
        if not slot.disk.exists():
            subprocess.run(["truncate", "-s", DISK_SIZE, str(slot.disk)], check=True)
            made = subprocess.run(
                ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", str(slot.disk)],
                capture_output=True, text=True,
            )
            if made.returncode:
                slot.disk.unlink(missing_ok=True)
                raise PrerequisiteError("mkfs.ext4", made.stderr.strip() or "failed to format the guest disk")
        host_ip, guest_ip = "169.254.64.1", "169.254.64.2"
        common = dict(slot_dir=slot.path, guest_ip=guest_ip, engine_port=ENGINE_PORT)
        from lab.render import render  # jinja2: only when a guest boots

        init = render("uml/init.sh.j2", modules_dir=MODULES_ROOT / str(kernel_release()), modules=guest_modules(),
                      warmup=guest_warmup(), **common)
        launch = render(
            "uml/launch.sh.j2", host_ip=host_ip, tap="vpnlab-tap", socket=slot.socket, kernel=KERNEL,
            memory=MEMORY, disk=slot.disk, **common,
        )
        for name, text in (("init.sh", init), ("launch.sh", launch)):
            (slot.path / name).write_text(text)
            (slot.path / name).chmod(0o755)

    def _launch(self) -> None:
        namespace = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--net"]
        process = subprocess.Popen(
            [*namespace, "sh", str(self.slot.path / "launch.sh")],
            stdin=subprocess.DEVNULL,
            stdout=open(self.slot.path / "logs" / "launch.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills the whole guest
            close_fds=True,
        )
        self.slot.pid_file.write_text(str(process.pid))

    def stop(self) -> None:
        """Halt the guest cleanly (flag), then kill whatever is left of its process group."""
        pid = self.slot.guest_pid()
        if pid is None:
            self.slot.pid_file.unlink(missing_ok=True)
            return
        (self.slot.path / "halt").touch()
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
        self.slot.pid_file.unlink(missing_ok=True)
        self.slot.socket.unlink(missing_ok=True)

    def modules_failed(self) -> list[str]:
        try:
            return (self.slot.path / "modules-failed").read_text().split()
        except OSError:
            return []


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def running_slots() -> list[Slot]:
    root = state_dir() / "uml"
    if not root.is_dir():
        return []
    slots = [Slot(p, int(p.name[4:])) for p in sorted(root.glob("slot*")) if p.name[4:].isdigit()]
    return [s for s in slots if s.running()]
