"""`vpnlab setup`: the shipped machine script, run against stand-in tools (nothing on the host changes)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lab.resources import setup_script

INSTALLED = {"kmod", "iptables", "util-linux"}  # the stand-in dpkg-query reports only these


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake_machine(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH whose apt-get, dpkg-query, docker, dockerd, systemctl, getent and useradd only record what they were asked."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    engine_flag = tmp_path / "engine-running"
    stub(bin_dir, "dpkg-query", f'case " {" ".join(sorted(INSTALLED))} " in *" $3 "*) printf installed;; esac')
    stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}')
    stub(bin_dir, "docker", f'test -e {engine_flag}')
    stub(bin_dir, "dockerd", f'echo dockerd >> {log}; touch {engine_flag}')
    stub(bin_dir, "systemctl", f'echo "systemctl $*" >> {log}; touch {engine_flag}')
    stub(bin_dir, "getent", "exit 2")  # the guests' user does not exist yet
    stub(bin_dir, "useradd", f'echo "useradd $*" >> {log}')
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "VPNLAB_DOCKERD_LOG": str(tmp_path / "dockerd.log")}
    return env, log


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", "setup", *args], env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=60,
    )


def test_the_script_ships_as_package_data() -> None:
    assert setup_script().is_file() and setup_script().read_text().startswith("#!/usr/bin/env bash")


@pytest.mark.skipif(os.geteuid() != 0, reason="the stand-in run needs root (no sudo prompt in tests)")
def test_dry_run_says_what_and_changes_nothing(fake_machine: tuple[dict[str, str], Path]) -> None:
    env, log = fake_machine
    proc = run(["--dry-run"], env)
    assert proc.returncode == 0, proc.stderr
    assert "would install docker.io debootstrap debian-archive-keyring user-mode-linux crun socat e2fsprogs (" in proc.stdout
    assert "would start it with" in proc.stdout and "nothing was changed" in proc.stdout
    assert "would create the system user vpnlab-guest" in proc.stdout
    assert not log.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the stand-in run needs root (no sudo prompt in tests)")
def test_setup_installs_starts_and_is_idempotent(fake_machine: tuple[dict[str, str], Path]) -> None:
    env, log = fake_machine
    proc = run([], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "apt-get update -qq"
    assert calls[1].startswith("apt-get install") and "docker.io" in calls[1] and "kmod" not in calls[1]
    assert calls[2] in ("dockerd", "systemctl start docker")
    assert calls[3].startswith("useradd --system") and calls[3].endswith(" vpnlab-guest")
    assert "engine answers" in proc.stdout.splitlines()[-3]
    again = run([], env)  # the packages stand-in still says "missing", but the engine now answers
    assert again.returncode == 0
    assert "starting" not in again.stdout and "docker: engine answers" in again.stdout


def test_without_root_or_sudo_one_clear_error(tmp_path: Path, fake_machine: tuple[dict[str, str], Path]) -> None:
    env, log = fake_machine
    bin_dir = Path(env["PATH"].split(":")[0])
    stub(bin_dir, "id", "echo 1000")  # not root
    stub(bin_dir, "sudo", "exit 1")  # sudo asks for a password: -n refuses
    proc = run([], env)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "needs root" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not log.exists()
    dry = run(["--dry-run"], env)
    assert dry.returncode == 0 and "would install" in dry.stdout
