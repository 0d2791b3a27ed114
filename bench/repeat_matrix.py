#!/usr/bin/env python3
"""The default passthrough matrix run N times in a row: are the verdicts identical every time?

Each run is the real command (``vpnlab matrix --json FILE``, a new process, its own labs and
guests), one after the other. Printed: each run's wall time and summary; every cell whose
verdict differed between runs (with each run's reason: a flake to be fixed at its cause, never
retried away); each cell's seconds (min / median / max over the runs). Exit 1 if any cell's
verdict differed or a run failed to produce its JSON.

    .venv/bin/python bench/repeat_matrix.py [--runs 10] [--profiles A,B] [--protocols P,Q]
                                            [--runtime auto] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def run_once(index: int, args: argparse.Namespace, folder: Path) -> dict[str, Any] | None:
    out = folder / f"run-{index}.json"
    command = [sys.executable, "-m", "lab", "matrix", "--json", str(out), "--runtime", args.runtime]
    for option in ("profiles", "protocols"):
        if getattr(args, option):
            command += [f"--{option}", getattr(args, option)]
    started = time.monotonic()
    proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    wall = time.monotonic() - started
    if not out.exists():
        print(f"run {index}: no JSON (exit {proc.returncode}); last lines:\n{proc.stderr[-2000:]}", flush=True)
        return None
    data = json.loads(out.read_text())
    data["wall_seconds"] = round(wall, 1)
    data["exit_code"] = proc.returncode
    summary = data["summary"]
    print(
        f"run {index}: {wall:6.1f} s, exit {proc.returncode}, {summary['as_expected']}/{summary['cells']} as expected,"
        f" {summary['mismatched']} not, {summary['skipped']} skipped",
        flush=True,
    )
    return data


def compare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    for data in runs:
        for cell in data["cells"]:
            key = (cell["profile"], cell["protocol"])
            verdicts[key].append((cell["observed"], cell["reason"]))
            seconds[key].append(cell["seconds"])
    flaky = {
        f"{profile}/{protocol}": [f"{observed}: {reason}" for observed, reason in seen]
        for (profile, protocol), seen in sorted(verdicts.items())
        if len({observed for observed, _ in seen}) > 1 or len(seen) != len(runs)
    }
    spread = {
        f"{profile}/{protocol}": {"min": min(s), "median": statistics.median(s), "max": max(s)}
        for (profile, protocol), s in sorted(seconds.items())
    }
    return {"flaky": flaky, "seconds": spread}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--profiles")
    parser.add_argument("--protocols")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--json", type=Path, help="write every figure as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vpnlab-repeat-") as tmp:
        results = [run_once(i + 1, args, Path(tmp)) for i in range(args.runs)]
    runs = [r for r in results if r is not None]
    if not runs:
        return 1
    figures = compare(runs)
    walls = [r["wall_seconds"] for r in runs]
    print(f"\n{len(runs)}/{args.runs} runs produced a matrix; wall seconds min {min(walls)}, "
          f"median {statistics.median(walls)}, max {max(walls)}")
    if figures["flaky"]:
        print(f"{len(figures['flaky'])} cell(s) changed verdict between runs:")
        for cell, seen in figures["flaky"].items():
            print(f"  {cell}:")
            for i, verdict in enumerate(seen, 1):
                print(f"    run {i}: {verdict[:300]}")
    else:
        print(f"every cell had the same verdict in every run ({len(figures['seconds'])} cells)")
    slowest = sorted(figures["seconds"].items(), key=lambda kv: -kv[1]["max"])[:8]
    print("slowest cells (seconds min / median / max):")
    for cell, s in slowest:
        print(f"  {cell:40} {s['min']:6.2f} {s['median']:6.2f} {s['max']:6.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": [{k: r[k] for k in ("wall_seconds", "exit_code", "summary", "seconds")}
                                                  for r in runs], **figures}, indent=2))
    return 0 if not figures["flaky"] and len(runs) == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
