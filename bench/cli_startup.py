#!/usr/bin/env python3
"""How long a vpnlab command takes before it does anything: the price of its imports.

Runs each command --runs times in a fresh process and prints the median wall time, next
to the plain alternative measured in the same run: a Python that only imports the
docker SDK (every vpnlab command that talks to an engine needs it) and a bare Python.

    .venv/bin/python bench/cli_startup.py [--runs 15] [--json FILE]

`vpnlab status` talks to the engine (it lists labs by label): start an engine first,
or read its figure as "import + a failed connection".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
VPNLAB = [PYTHON, "-m", "lab"]

COMMANDS: dict[str, list[str]] = {
    "python (bare)": [PYTHON, "-c", "pass"],
    "python -c 'import docker'": [PYTHON, "-c", "import docker"],
    "vpnlab --help": [*VPNLAB, "--help"],
    "vpnlab --version": [*VPNLAB, "--version"],
    "vpnlab status": [*VPNLAB, "status"],
    "vpnlab validate": [*VPNLAB, "validate", str(REPO / "topologies" / "home-office.yml")],
    "import lab.cli": [PYTHON, "-c", "import lab.cli"],
}


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    figures = {name: median_seconds(cmd, args.runs) for name, cmd in COMMANDS.items()}
    baseline = figures["python -c 'import docker'"]
    print(f"median of {args.runs} runs each (seconds); ratio against a Python that only imports docker")
    for name, seconds in figures.items():
        print(f"  {name:<28} {seconds:6.3f}   {seconds / baseline:4.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "seconds": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
