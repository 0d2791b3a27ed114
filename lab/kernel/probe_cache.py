"""The kernel probe's output, kept for engines whose kernel is the same from one boot to the next.

A User-Mode Linux guest boots the same kernel file with the same modules every time, so the
probe (a container started in the guest: ~12 s there) says the same every time too. Its text
is kept in the state folder (``probes/<sha256 of the runtime's probe_key>``, a private folder,
written by this user only, never through a link) and read back on the next boot. The key names
the kernel file, its release, the modules and warm-up commands of the boot, the boot script's
template and the probe's image (lab.runtime.uml_runtime.probe_key); the probe script itself is
hashed in. A boot where a module failed to load is probed afresh and kept nowhere.
``rm -r <state folder>/probes`` forgets every kept probe. A host engine gives no key: its kernel may gain or
lose modules at any moment, and it is probed every time (it takes a moment there).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from lab.kernel.features import KernelFeatures, parse_probe
from lab.runtime.uml_slot import UnsafePath, open_no_follow, private_dir, state_dir, write_file

PROBE_BYTES = 64 * 1024  # a probe prints a few kilobytes


def cache_path(key: str, script: str) -> Path:
    """The file that keeps the probe of the engine ``key`` names, by ``script``."""
    digest = hashlib.sha256(f"{key}\n{script}".encode()).hexdigest()[:32]
    return state_dir() / "probes" / digest


def load(path: Path) -> KernelFeatures | None:
    """The kept probe, or None when there is none, it is cut short, or it is not this user's
    own file in this user's private folder: then it is probed again."""
    try:
        private_dir(path.parent)
        fd = open_no_follow(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as kept:
            if os.fstat(fd).st_uid != os.geteuid():
                return None
            features = parse_probe(kept.read(PROBE_BYTES).decode("utf-8", "replace"))
    except (OSError, UnsafePath):
        return None
    return features if features.complete else None


def save(path: Path, text: str) -> None:
    """Keep a probe's text; a folder or file that cannot be written only means probing next time."""
    try:
        private_dir(private_dir(path.parent.parent) / path.parent.name)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        write_file(partial, text)
        os.replace(partial, path)  # whole or not at all: a reader never sees half of it
    except (OSError, UnsafePath):
        pass
