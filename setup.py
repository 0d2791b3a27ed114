"""Packaging the repository's top-level data folders into the ``lab`` package.

pyproject.toml holds the metadata; this file only adds what TOML cannot say:
``images/``, ``topologies/`` and ``profiles/`` stay at the top level of the
repository, yet ship inside the wheel as ``lab/_data/<folder>/`` (package-dir
mapping), found at run time through lab.resources. A folder that does not
exist yet (profiles/) is simply left out. Every file is shipped, dot files too:
an image's content hash covers its whole build folder (images/base/bin/.keep).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
SHIPPED_FOLDERS = ("images", "topologies", "profiles")  # keep in step with lab/resources.py


def shipped_packages() -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """Every folder below each shipped top-level folder becomes a data-only package."""
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    package_data: dict[str, list[str]] = {}
    for folder in SHIPPED_FOLDERS:
        top = ROOT / folder
        if not top.is_dir():
            continue
        for directory in sorted([top, *(p for p in top.rglob("*") if p.is_dir())]):
            if directory.name == "__pycache__":
                continue
            relative = directory.relative_to(ROOT)
            name = "lab._data." + ".".join(relative.parts)
            packages.append(name)
            package_dir[name] = relative.as_posix()
            package_data[name] = ["*", ".*"]
    return packages, package_dir, package_data


data_packages, data_dirs, data_files = shipped_packages()

setup(
    packages=find_namespace_packages(include=["lab", "lab.*"], exclude=["*.__pycache__"]) + data_packages,
    package_dir=data_dirs,
    package_data={"": ["*.j2", "*.yml", "*.sh"], **data_files},
)
