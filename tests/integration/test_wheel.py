"""vpnlab as a dependency of someone else's repository: built, installed from the wheel, run from elsewhere.

One module-scoped fixture builds the sdist and, from it, the wheel (python -m
build), and installs the wheel into a fresh virtual environment in a temporary
folder outside this repository (pip's cache makes that quick). Every command
then runs from a folder outside the repository with that venv's ``vpnlab`` and
``python``: nothing here may lean on the checkout. The second half plays a
router team's repository: a starter project from ``vpnlab init`` and a
hand-made one, each running its own pytest with --junitxml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import lab
from lab.images import IMAGES, context_hash

REPO = Path(__file__).resolve().parents[2]
USER_TOPOLOGY = """\
name: it-wheel-user
servers: [{name: gw, protocols: [wireguard, openvpn-tcp]}]
clients: [{name: erin}]
tunnels:
  - {client: erin, server: gw, protocol: wireguard, expect: up}
  - {client: erin, server: gw, protocol: openvpn-tcp, expect: up}
"""


@dataclass
class Installed:
    venv: Path
    outside: Path  # a working folder outside the repository
    wheel: Path
    sdist: Path
    timings: dict[str, float]

    def run(self, *argv: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A command of the venv (vpnlab, python) run from outside the repository, without this venv's paths."""
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "VPNLAB_IMAGES_DIR")}
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        return subprocess.run(
            [str(self.venv / "bin" / argv[0]), *argv[1:]], cwd=cwd or self.outside, env=env,
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(REPO)
    dist, venv, outside = base / "dist", base / "venv", base / "work"
    outside.mkdir()
    timings: dict[str, float] = {}
    started = time.monotonic()
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    timings["build sdist+wheel"] = time.monotonic() - started
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    [wheel] = dist.glob("vpnlab-*.whl")
    [sdist] = dist.glob("vpnlab-*.tar.gz")
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        cwd=outside, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    timings["venv + pip install"] = time.monotonic() - started
    return Installed(venv, outside, wheel, sdist, timings)


@pytest.fixture(scope="module", autouse=True)
def report_timings(installed: Installed) -> Iterator[None]:
    yield
    print("\nwheel test timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in installed.timings.items()))


def shipped(installed: Installed, what: str) -> str:
    """Ask the installed package (not the checkout) where its data is."""
    proc = installed.run("python", "-c", f"import lab.resources as r; print({what})")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# --- the distribution ------------------------------------------------------------


def test_wheel_and_sdist_hold_everything_a_run_needs(installed: Installed) -> None:
    in_wheel = set(zipfile.ZipFile(installed.wheel).namelist())
    for spec in IMAGES:
        assert f"lab/_data/images/{spec.name}/Dockerfile" in in_wheel
    assert "lab/_data/images/base/bin/.keep" in in_wheel  # hashed and COPYed: dot files ship too
    assert {f"lab/_data/topologies/{p.name}" for p in (REPO / "topologies").glob("*.yml")} <= in_wheel
    assert {"lab/setup/machine.sh", "lab/templates/init/test_vpn.py.j2", "lab/templates/router/rules.v4.j2"} <= in_wheel
    with tarfile.open(installed.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"setup.py", "images/base/Dockerfile", "images/base/bin/.keep", "topologies/home-office.yml"} <= names


def test_version_from_the_installed_command(installed: Installed) -> None:
    proc = installed.run("vpnlab", "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"vpnlab, version {lab.__version__}"


def test_images_found_in_the_package_and_up_to_date(installed: Installed) -> None:
    images_dir = Path(shipped(installed, "r.images_dir()"))
    assert images_dir.is_relative_to(installed.venv) and not images_dir.is_relative_to(REPO)
    for spec in IMAGES:  # same files, same hash, wherever they are found
        assert context_hash(images_dir / spec.name, "p") == context_hash(REPO / "images" / spec.name, "p")
    proc = installed.run("vpnlab", "images", "build", timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no Dockerfile" not in proc.stderr


def test_validate_shipped_and_own_topologies(installed: Installed) -> None:
    home_office = shipped(installed, "r.topology('home-office')")
    assert "site-packages" in home_office
    proc = installed.run("vpnlab", "validate", home_office)
    assert proc.returncode == 0 and "lab 'home-office'" in proc.stdout, proc.stderr
    own = installed.outside / "mine.yml"
    own.write_text(USER_TOPOLOGY)
    proc = installed.run("vpnlab", "validate", "mine.yml")
    assert proc.returncode == 0 and "lab 'it-wheel-user', 1 client(s), 1 server(s), 2 tunnel(s)" in proc.stdout


def test_setup_from_the_installed_package_is_a_no_op_here(installed: Installed) -> None:
    dry = installed.run("vpnlab", "setup", "--dry-run")
    assert dry.returncode == 0 and "nothing was changed" in dry.stdout, dry.stdout + dry.stderr
    real = installed.run("vpnlab", "setup", timeout=600)
    assert real.returncode == 0, real.stdout + real.stderr
    assert "packages: all present" in real.stdout and "docker: engine answers" in real.stdout
    assert "installing" not in real.stdout and "starting" not in real.stdout


def test_a_real_lab_from_outside_the_repository(installed: Installed) -> None:
    (installed.outside / "user.yml").write_text(USER_TOPOLOGY)
    started = time.monotonic()
    proc = installed.run("vpnlab", "run", "user.yml", "--runtime", "docker", "--json", "result.json")
    installed.timings["vpnlab run (2 tunnels)"] = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((installed.outside / "result.json").read_text())
    assert result["version"] == lab.__version__ and result["passed"] and result["runtime"] == "docker"
    assert [t["observed"] for t in result["tunnels"]] == ["up", "up"]
    assert f"vpnlab {lab.__version__}" in proc.stdout  # the table's caption


# --- a router team's repository ------------------------------------------------------


def junit_cases(path: Path) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.parse(path).getroot().iter("testcase")}


def test_starter_project_from_vpnlab_init_passes(installed: Installed, tmp_path: Path) -> None:
    project = tmp_path / "it-wheel-starter"
    proc = installed.run("vpnlab", "init", str(project))
    assert proc.returncode == 0, proc.stderr
    started = time.monotonic()
    tests = installed.run(
        "python", "-m", "pytest", "tests/test_vpn.py", "--junitxml=results/junit.xml",
        "--vpnlab-runtime", "docker", "--vpnlab-require-engine", "-p", "no:cacheprovider", cwd=project,
    )
    installed.timings["starter project pytest (3 tunnels)"] = time.monotonic() - started
    assert tests.returncode == 0, tests.stdout[-5000:] + tests.stderr[-2000:]
    cases = junit_cases(project / "results" / "junit.xml")
    assert set(cases) == {
        "test_tunnel[alice-wireguard-vpn]", "test_tunnel[alice-openvpn-udp-vpn]", "test_tunnel[bob-openvpn-tcp-vpn]"
    }
    assert all(len(case) == 0 for case in cases.values())  # no failure, error or skipped child: passed


HAND_MADE_PYPROJECT = """\
[project]
name = "acme-router-firmware"
version = "1.0"
dependencies = []

[dependency-groups]
test = ["vpnlab"]

[tool.pytest.ini_options]
testpaths = ["checks"]
junit_suite_name = "acme-vpn"
"""
HAND_MADE_TOPOLOGY = """\
name: it-wheel-acme
router: {block: [udp/1194]}
servers: [{name: hq, protocols: [wireguard, openvpn-udp]}]
clients: [{name: kiosk}]
tunnels:
  - {client: kiosk, server: hq, protocol: wireguard, expect: up}
  - {client: kiosk, server: hq, protocol: openvpn-udp, expect: down, deadline: 8}
"""
HAND_MADE_TESTS = """\
import pytest
from lab.pytest_plugin import assert_tunnel

pytestmark = pytest.mark.vpnlab_topology("../labs/acme.yml")

TUNNELS = [("kiosk", "wireguard", "up"), ("kiosk", "openvpn-udp", "down")]


@pytest.mark.parametrize("client,protocol,expect", TUNNELS, ids=[f"{c}-{p}-hq" for c, p, _ in TUNNELS])
def test_tunnel(vpnlab_lab, client, protocol, expect):
    assert_tunnel(vpnlab_lab.check(client, protocol), expect)


def test_runs_where_asked(vpnlab_lab):
    assert vpnlab_lab.runtime == "docker"


def test_deliberately_wrong(vpnlab_lab):
    assert_tunnel(vpnlab_lab.check("kiosk", "wireguard"), "down")
"""


def test_hand_made_repository_junit_names_tunnels_and_shows_evidence(installed: Installed, tmp_path: Path) -> None:
    repo = tmp_path / "acme"
    (repo / "labs").mkdir(parents=True)
    (repo / "checks").mkdir()
    (repo / "pyproject.toml").write_text(HAND_MADE_PYPROJECT)
    (repo / "labs" / "acme.yml").write_text(HAND_MADE_TOPOLOGY)
    (repo / "checks" / "test_router.py").write_text(HAND_MADE_TESTS)
    tests = installed.run(
        "python", "-m", "pytest", "--junitxml=junit.xml", "--vpnlab-runtime", "docker", "-p", "no:cacheprovider",
        cwd=repo,
    )
    assert tests.returncode == 1, tests.stdout[-5000:] + tests.stderr[-2000:]  # exactly the wrong one fails
    root = ET.parse(repo / "junit.xml").getroot()
    assert root.find("testsuite").get("name") == "acme-vpn"  # their pyproject.toml was the config
    cases = junit_cases(repo / "junit.xml")
    assert set(cases) == {
        "test_tunnel[kiosk-wireguard-hq]", "test_tunnel[kiosk-openvpn-udp-hq]", "test_runs_where_asked",
        "test_deliberately_wrong",
    }
    for name in ("test_tunnel[kiosk-wireguard-hq]", "test_tunnel[kiosk-openvpn-udp-hq]", "test_runs_where_asked"):
        assert len(cases[name]) == 0, ET.tostring(cases[name]).decode()
    failure = cases["test_deliberately_wrong"].find("failure")
    assert failure is not None
    text = (failure.get("message") or "") + (failure.text or "")
    assert "tunnel kiosk-wireguard-hq: expected down, observed up" in text
    assert "router_conntrack" in text and "evidence" in text
