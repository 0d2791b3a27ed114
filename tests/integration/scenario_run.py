"""A topology run the way a user runs it (``vpnlab run FILE --json``, a new process), for the
tests of the shipped scenarios: its process and its JSON result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_topology(topology: Path, out: Path, runtime: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``vpnlab run TOPOLOGY --runtime RUNTIME --json OUT``; its output is printed (seen with -s)."""
    proc = subprocess.run(
        [sys.executable, "-m", "lab", "run", str(topology), "--runtime", runtime, "--json", str(out)],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    print(proc.stdout)  # the scenario's lines
    assert out.exists(), proc.stdout + proc.stderr  # no JSON: the run's own words say why
    return proc, json.loads(out.read_text())
