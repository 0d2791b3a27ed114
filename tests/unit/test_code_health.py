"""The code stays readable: no unused imports or names (pyflakes), no dead code (vulture, with
tests/health/vulture_whitelist.py for what frameworks call), no module longer than a sitting's read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 410  # "no module over ~400 lines"


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_pyflakes_finds_nothing() -> None:
    pytest.importorskip("pyflakes", reason="pyflakes is a test extra: pip install -e '.[test]'")
    found = tool("pyflakes", "lab", "tests/unit", "tests/integration", "bench")  # not the vulture whitelist
    assert found.returncode == 0, found.stdout + found.stderr


def test_vulture_finds_no_dead_code() -> None:
    pytest.importorskip("vulture", reason="vulture is a test extra: pip install -e '.[test]'")
    found = tool("vulture", "lab", "tests/health/vulture_whitelist.py", "--min-confidence", "60")
    assert found.returncode == 0, found.stdout + found.stderr


@pytest.mark.parametrize("module", sorted((ROOT / "lab").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_short(module: Path) -> None:
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module.relative_to(ROOT)} has {lines} lines: split it by what its parts do"
