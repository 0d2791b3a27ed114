"""The ``uml`` runtime: the engine inside a User-Mode Linux guest (lab.runtime.uml), a full kernel.

Opening takes a guest slot, boots the guest unless it already runs, and loads
the lab images from the host's engine into it. Closing stops the guest unless
asked to keep it or it still holds labs.
"""

from __future__ import annotations

import docker
import docker.errors

from lab.errors import PrerequisiteError, VpnlabError
from lab.runtime.base import Progress, Runtime, quiet
from lab.runtime.engine import connect
from lab.runtime.lab import holds_labs
from lab.runtime.uml import GuestError, UmlGuest, running_slots, uml_available


class UmlRuntime(Runtime):
    name = "uml"
    title = "a User-Mode Linux guest's engine"
    short = "UML"
    description = "an engine in a User-Mode Linux guest: a full kernel with PPP, L2TP and ESP"
    full_kernel = True
    concurrency = 3  # the guest has one CPU; its engine stopped answering with nine container starts at once
    # Every system call of the guest's processes is a ptrace stop on the host, and its one CPU runs
    # the engine, the daemons and the up-checks: PPTP and L2TP calls that take 3-5 s on a quiet
    # machine were seen at 20-27 s on a lab's first check under load (CI). Deadlines are doubled.
    time_scale = 2.0

    def __init__(self, reason: str, host: docker.DockerClient | None = None, *, guest: UmlGuest | None = None):
        super().__init__(reason, host)
        self.guest = guest
        self._client = guest.client() if guest else None
        self._owned = False  # whether this process booted or took the guest (and must close it)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return uml_available()

    def open(self, progress: Progress = quiet) -> None:
        usable, why = uml_available()
        if not usable:
            raise PrerequisiteError("User-Mode Linux runtime", why)
        guest = UmlGuest.acquire()
        try:
            booted = guest.ensure_running(progress)
        except BaseException:  # a half-booted guest (or Ctrl-C while booting) is stopped here
            guest.stop()
            guest.release()
            raise
        self.guest, self._client, self._owned = guest, guest.client(), True
        self.timings["guest_boot"] = round(booted, 2)
        # From here a failure leaves a running guest: the caller's close() stops it.
        from lab.runtime.image_sync import sync_images  # the image tables: only when a guest opens

        _, seconds = sync_images(self.host or connect(), self._client, progress)
        self.timings["image_load"] = round(seconds, 2)

    def close(self, keep: bool = False) -> None:
        if self.guest is None or not self._owned:
            return
        try:
            busy = holds_labs(self.client)
        except Exception:  # noqa: BLE001 - an unreachable guest is stopped all the same
            busy = False
        if not keep and not busy:
            self.guest.stop()
        self.guest.release()
        self.guest, self._client, self._owned = None, None, False

    def probe_key(self) -> str | None:
        """The guest kernel file (its inode, size and time), its release, the modules and warm-up
        commands of its boot, the boot script's template and the client image the probe runs in:
        all fixed between boots. None (probe, keep nothing) after a boot where a module failed
        to load: that boot's kernel is not the usual one."""
        from lab.images import image_tag
        from lab.render import environment
        from lab.runtime.uml import KERNEL, guest_modules, guest_warmup, kernel_release

        if self.guest is None or self.guest.modules_failed():
            return None
        try:
            kernel = KERNEL.stat()
            image = self.client.images.get(image_tag("client")).id
        except (OSError, docker.errors.DockerException):
            return None
        init, _, _ = environment().loader.get_source(environment(), "uml/init.sh.j2")  # type: ignore[union-attr]
        return "|".join([str(KERNEL), str(kernel.st_ino), str(kernel.st_size), str(kernel.st_mtime_ns),
                         str(kernel_release()), ",".join(guest_modules()), "\n".join(guest_warmup()), init, image])

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            raise RuntimeError("the uml runtime was not opened")
        return self._client

    @property
    def engine_url(self) -> str:
        if self.guest is None:
            raise RuntimeError("the uml runtime was not opened")
        return f"unix://{self.guest.slot.socket}"

    @property
    def where(self) -> str:
        return f"uml ({self.guest.slot.path.name})" if self.guest else self.name

    @classmethod
    def engines(cls, host: docker.DockerClient) -> list[Runtime]:
        found: list[Runtime] = []
        for slot in running_slots():
            guest = UmlGuest(slot)
            if guest.engine_answers():
                found.append(cls("where the lab runs", host, guest=guest))
        return found

    def stop_if_idle(self) -> bool:
        if self.guest is None or self._owned or holds_labs(self.client):
            return False
        if not self.guest.try_lock():  # another vpnlab process is using it
            return False
        self.guest.stop()
        self.guest.release()
        return True

    def failure(self) -> VpnlabError | None:
        why = self.guest.stopped_why() if self.guest else None
        return GuestError(self.guest.slot, why, "console.log") if self.guest and why else None

    def notices(self) -> list[str]:
        failed = self.guest.modules_failed() if self.guest else []
        return [f"guest modules that failed to load: {' '.join(failed)}"] if failed else []
