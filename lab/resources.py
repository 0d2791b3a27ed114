"""The data vpnlab ships, found through the installed package, one function per kind.

Why this module exists: vpnlab runs from a wheel in someone else's repository,
where no checkout is around. The Dockerfiles (``images/``), the shipped
topologies (``topologies/``) and router profiles (``profiles/``, once there)
live at the top level of this repository and are packaged as ``lab._data.*``
(see setup.py); templates and the machine set-up script are plain package data
of ``lab``. Everything is located with importlib.resources, so a wheel, an
sdist build and an editable install all answer the same way. Nothing here reads
the checkout by path.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

DATA_PACKAGE = "lab._data"


def _directory(package: str) -> Path | None:
    """A shipped package's folder on disk, or None when this install has no such package."""
    try:
        found = importlib.resources.files(package)
    except ModuleNotFoundError:
        return None
    # pip unpacks wheels onto the file system, so this is a real folder; a
    # zip-imported vpnlab (never made by pip) could not feed `docker build` anyway.
    path = Path(str(found))
    return path if path.is_dir() else None


def images_dir() -> Path:
    """The image build folders (base, router, client, server); ``VPNLAB_IMAGES_DIR`` overrides."""
    override = os.environ.get("VPNLAB_IMAGES_DIR")
    if override:
        return Path(override)
    found = _directory(f"{DATA_PACKAGE}.images")
    if found is None:  # a broken install: say where it was looked for
        return Path(str(importlib.resources.files(DATA_PACKAGE))) / "images"
    return found


def topologies_dir() -> Path | None:
    """The folder of shipped example topologies."""
    return _directory(f"{DATA_PACKAGE}.topologies")


def topologies() -> list[Path]:
    """The shipped example topologies, by name."""
    folder = topologies_dir()
    return sorted(folder.glob("*.yml")) if folder else []


def topology(name: str) -> Path:
    """A shipped topology by name ('home-office' or 'home-office.yml')."""
    from lab.errors import VpnlabError

    stem = name.removesuffix(".yml")
    for path in topologies():
        if path.stem == stem:
            return path
    known = ", ".join(p.stem for p in topologies()) or "none"
    raise VpnlabError(f"no shipped topology named '{stem}'", hint=f"shipped: {known}")


def profiles_dir() -> Path | None:
    """The folder of shipped router profiles (None until the repository has profiles/)."""
    return _directory(f"{DATA_PACKAGE}.profiles")


def profiles() -> list[Path]:
    """The shipped router profiles (profiles/*.yml), by name."""
    folder = profiles_dir()
    return sorted(folder.glob("*.yml")) if folder else []



def setup_script() -> Path:
    """The machine set-up script (system packages, Docker engine) that `vpnlab setup` runs."""
    return Path(str(importlib.resources.files("lab") / "setup" / "machine.sh"))
