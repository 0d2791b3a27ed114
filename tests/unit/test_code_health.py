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


def test_every_module_imports_on_its_own() -> None:
    """A module imported first (by a plugin, a test, a user's script) must not meet an import
    cycle that the usual order hides: each is imported into a clean set of lab modules."""
    script = (
        "import importlib, pkgutil, sys, lab\n"
        "bad = []\n"
        "names = [m.name for m in pkgutil.walk_packages(lab.__path__, 'lab.') if m.name != 'lab.__main__']\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m == 'lab' or m.startswith('lab.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        bad.append(f'{name}: {exc}')\n"
        "print('\\n'.join(bad))\n"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert found.returncode == 0 and found.stdout.strip() == "", found.stdout + found.stderr
