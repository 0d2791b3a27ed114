#!/usr/bin/env python3
"""Benchmark both runtimes side by side: the host's Docker engine and a User-Mode Linux guest's.

Prints, as medians over --runs runs:
  guest boot      from launching the guest to its engine answering (UML only)
  images (1st)    making the lab images available on a fresh engine (UML: a new guest disk)
  images (2nd)    the same on the next run (nothing should load)
  container start create + start of one node container through the SDK
  lab up / down   the foundation topology (topologies/home-office.yml)
and, with --parallel, the wall time of two labs run one after the other vs at once
(two guests use both cores).

    .venv/bin/python bench/runtime.py [--runs 3] [--runtime docker|uml|both] [--parallel] [--json FILE]

Only lab traffic inside the lab's own segments; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.images import image_tag  # noqa: E402
from lab.orchestrate import Session, new_session, plan_for  # noqa: E402
from lab.runtime.lab import DockerLab, this_owner  # noqa: E402
from lab.topology import load_topology  # noqa: E402

TOPOLOGY = REPO / "topologies" / "home-office.yml"


def timed(fn: Callable[[], object]) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def container_start(session: Session) -> float:
    client = session.client

    def start() -> None:
        container = client.containers.create(
            image_tag("client"), ["sleep", "infinity"], network_disabled=True, init=True,
            labels={"vpnlab.lab": "_bench"},
        )
        container.start()
        bench_containers.append(container)

    bench_containers: list = []
    seconds = timed(start)
    for container in bench_containers:
        container.remove(force=True)
    return seconds


def lab_cycle(session: Session) -> tuple[float, float]:
    topology = load_topology(TOPOLOGY).model_copy(update={"name": "bench-lab"})
    lab = DockerLab(session.client, topology.name)
    lab.down()
    spec = plan_for(session, topology)
    up = timed(lambda: lab.up(spec, owner=this_owner("run"), source=str(TOPOLOGY)))
    down = timed(lab.down)
    return up, down


def bench_runtime(kind: str, runs: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {k: [] for k in ("guest boot", "container start", "lab up", "lab down")}
    for _ in range(runs):
        session = new_session()
        try:
            session.open_runtime(kind)
            if "guest_boot" in session.runtime.timings:
                figures["guest boot"].append(session.runtime.timings["guest_boot"])
            session.capabilities()  # the probe, outside the measured figures
            figures["container start"].append(container_start(session))
            up, down = lab_cycle(session)
            figures["lab up"].append(up)
            figures["lab down"].append(down)
        finally:
            session.close()  # stops the guest: the next run boots again
    return figures


def image_availability(kind: str) -> dict[str, list[float]]:
    """First and second run on a fresh engine: for UML a guest with an empty disk in a temporary state dir."""
    if kind == "docker":
        session = new_session()
        t0 = time.monotonic()
        session.ensure_images()
        return {"images (1st)": [], "images (2nd)": [time.monotonic() - t0]}
    state = tempfile.mkdtemp(prefix="vpnlab-bench-")
    old = os.environ.get("VPNLAB_STATE_DIR")
    os.environ["VPNLAB_STATE_DIR"] = state
    figures: dict[str, list[float]] = {"images (1st)": [], "images (2nd)": []}
    try:
        for key in ("images (1st)", "images (2nd)"):
            session = new_session()
            try:
                session.open_runtime("uml")
                figures[key].append(session.runtime.timings.get("image_load", 0.0))
            finally:
                session.close()
    finally:
        if old is None:
            os.environ.pop("VPNLAB_STATE_DIR", None)
        else:
            os.environ["VPNLAB_STATE_DIR"] = old
        shutil.rmtree(state, ignore_errors=True)
    return figures


def parallel_labs() -> dict[str, float]:
    """Two UML labs one after the other, then at once (each run takes a guest slot of its own)."""
    topologies = []
    tmp = Path(tempfile.mkdtemp(prefix="vpnlab-bench-"))
    for i in (1, 2):
        path = tmp / f"lab{i}.yml"
        path.write_text(TOPOLOGY.read_text().replace("name: home-office", f"name: bench-par{i}"))
        topologies.append(path)
    cmd = [sys.executable, "-m", "lab", "run", "--runtime", "uml"]
    warm = [subprocess.Popen([*cmd, str(p)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in topologies]
    for proc in warm:  # loads images into both guest slots once
        proc.wait()
    sequential = timed(lambda: [subprocess.run([*cmd, str(p)], capture_output=True) for p in topologies])

    def together() -> None:
        procs = [subprocess.Popen([*cmd, str(p)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in topologies]
        for proc in procs:
            proc.wait()

    at_once = timed(together)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"two labs, one after the other": sequential, "two labs at once": at_once}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runtime", choices=("docker", "uml", "both"), default="both")
    parser.add_argument("--parallel", action="store_true", help="also time two UML labs at once")
    parser.add_argument("--skip-images", action="store_true", help="skip the fresh-guest image figures (~70 s)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    kinds = ["docker", "uml"] if args.runtime == "both" else [args.runtime]
    table: dict[str, dict[str, float | None]] = {}
    for kind in kinds:
        figures = bench_runtime(kind, args.runs)
        if not args.skip_images:
            figures.update(image_availability(kind))
        table[kind] = {k: (statistics.median(v) if v else None) for k, v in figures.items()}
    rows = list(dict.fromkeys(k for figures in table.values() for k in figures))
    print(f"median of {args.runs} run(s), seconds; topology {TOPOLOGY.relative_to(REPO)}")
    print(f"{'':18}" + "".join(f"{kind:>12}" for kind in kinds))
    for row in rows:
        cells = "".join(f"{'-' if table[k].get(row) is None else format(table[k][row], '.2f'):>12}" for k in kinds)
        print(f"{row:18}{cells}")
    result: dict[str, object] = {"runs": args.runs, "medians": table}
    if args.parallel:
        par = parallel_labs()
        result["parallel"] = par
        for name, seconds in par.items():
            print(f"{name}: {seconds:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
