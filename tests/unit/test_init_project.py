"""`vpnlab init`: what it writes, that the result is a valid project, and that it never half-overwrites."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml

from lab import __version__
from lab.init_project import name_from_folder, render_project
from lab.topology import load_topology

EXPECTED = {"topologies/my-lab.yml", "tests/test_vpn.py", "requirements-vpnlab.txt", ".github/workflows/vpnlab.yml"}


def vpnlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def test_init_writes_a_valid_starter_project(tmp_path: Path) -> None:
    project = tmp_path / "My Lab"
    proc = vpnlab("init", str(project), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert written == EXPECTED
    topology = load_topology(project / "topologies" / "my-lab.yml")
    assert topology.name == "my-lab"
    assert {t.protocol for t in topology.tunnels} >= {"wireguard", "openvpn-udp"}
    test_source = (project / "tests" / "test_vpn.py").read_text()
    ast.parse(test_source)
    assert 'vpnlab_topology(TOPOLOGY)' in test_source and '"../topologies/my-lab.yml"' in test_source
    assert "parametrize" in test_source and "assert_tunnel" in test_source
    assert f"vpnlab>={__version__}" in (project / "requirements-vpnlab.txt").read_text()
    workflow = yaml.safe_load((project / ".github" / "workflows" / "vpnlab.yml").read_text())
    runs = [step.get("run", "") for step in workflow["jobs"]["vpn-tunnels"]["steps"]]
    assert any("pip install" in r and "vpnlab" in r for r in runs)
    assert "vpnlab setup" in runs
    assert any("pytest" in r and "--junitxml" in r for r in runs)
    assert any(step.get("uses", "").startswith("actions/checkout") for step in workflow["jobs"]["vpn-tunnels"]["steps"])


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    mine = tmp_path / "tests" / "test_vpn.py"
    mine.write_text("# mine\n")
    proc = vpnlab("init", "--name", "demo", cwd=tmp_path)
    assert proc.returncode == 2
    assert str(Path("tests") / "test_vpn.py") in proc.stderr and "--force" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert mine.read_text() == "# mine\n"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["tests", "tests/test_vpn.py"]
    forced = vpnlab("init", "--name", "demo", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "assert_tunnel" in mine.read_text()
    assert not list(tmp_path.rglob("*.vpnlab-init"))


def test_init_rejects_an_invalid_name(tmp_path: Path) -> None:
    proc = vpnlab("init", "--name", "Not_Valid", cwd=tmp_path)
    assert proc.returncode == 2 and "not a valid lab name" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_names_from_folders() -> None:
    assert name_from_folder(Path("/x/My VPN Tests")) == "my-vpn-tests"
    assert name_from_folder(Path("/x/2024_router")) == "router"
    assert name_from_folder(Path("/x/___")) == "vpn-starter"
    assert len(name_from_folder(Path("/x/" + "a" * 40))) == 24


def test_render_has_no_leftover_placeholders() -> None:
    for text in render_project("demo").values():
        assert "{{" not in text and "{%" not in text
