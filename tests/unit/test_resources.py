"""Shipped data found through the package, and the version carried by results."""

from __future__ import annotations

import importlib.resources

from pathlib import Path

import pytest
from rich.console import Console

from lab import __version__, resources
from lab.images import IMAGES, images_dir
from lab.report import print_result
from lab.check.results import RunResult, TunnelResult


def test_every_image_folder_and_topology_is_found_through_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VPNLAB_IMAGES_DIR", raising=False)
    assert all((images_dir() / spec.name / "Dockerfile").is_file() for spec in IMAGES)
    assert "home-office" in [p.stem for p in resources.topologies()]
    assert resources.topology("home-office.yml") == resources.topology("home-office")
    assert (Path(str(importlib.resources.files("lab"))) / "templates" / "init" / "test_vpn.py.j2").is_file()
    assert "open" in [p.stem for p in resources.profiles()]


def test_unknown_shipped_topology_names_the_known_ones() -> None:
    with pytest.raises(Exception, match="shipped: .*home-office"):
        resources.topology("nope")


def test_version_in_json_and_table(tmp_path: Path) -> None:
    tunnel = TunnelResult("a", "vpn", "wireguard", "up", "up", "ok", 1.0)
    result = RunResult("t", "docker", "test", "6.1", [tunnel])
    assert result.to_dict()["version"] == __version__
    console = Console(record=True, width=120)
    print_result(result, console)
    assert f"vpnlab {__version__}" in console.export_text()
