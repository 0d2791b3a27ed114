#!/usr/bin/env python3
"""Where the passthrough matrix's time goes, and what vpnlab's orchestration costs over plain docker.

1. The matrix end to end (default: every built-in profile × every protocol), by phase:
   images, guest boot, up, check, nat, down (summed over labs: lanes overlap), and wall time.
2. The same containers and links made and removed two ways on the host engine, in the same
   run: vpnlab's bring-up (create, copy files, start, wire) and teardown of one matrix lab,
   and the plain docker SDK doing the same objects (same images, caps, devices, sysctls, files;
   started; veth-wired by the same switch script; removed), with the same parallelism.
   Printed as the ratio orchestration / plain (vpnlab's node set-up scripts run daemons'
   configuration and are not part of either figure).

    .venv/bin/python bench/matrix.py [--profiles A,B] [--protocols P,Q] [--runtime auto] [--jobs N]
                                     [--repeats 3] [--skip-matrix] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console

BENCH_LAB = "bench-objects"
BENCH_LABEL = "vpnlab.bench"


def matrix_figures(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    from lab.matrix.run import MatrixOptions, run_matrix

    started = time.monotonic()
    result = run_matrix(MatrixOptions(args.profiles, args.protocols, args.jobs, None, args.runtime), console)
    wall = round(time.monotonic() - started, 1)
    return {"wall_seconds": wall, "phases": result.seconds, "runtime": result.runtime, "kernel": result.kernel,
            "summary": result.summary(), "passed": result.passed}


def one_lab_plan(client: Any) -> Any:
    """A matrix lab's plan (the first profile, every protocol the host kernel runs, plus l2tp servers)."""
    from lab.capabilities import Capabilities
    from lab.credentials import LabSecrets
    from lab.images import image_tag
    from lab.kernel import probe_engine_kernel
    from lab.matrix.cells import LabJob, lab_topology
    from lab.plan import plan_lab
    from lab.profiles import builtin_profiles, load_profile
    from lab.protocols import PROTOCOLS

    job = LabJob(load_profile(builtin_profiles()[0]), list(PROTOCOLS), BENCH_LAB)
    topology = lab_topology(job)
    environment = Capabilities(probe_engine_kernel(client, image_tag("client"))).environment
    return plan_lab(topology, environment, LabSecrets(topology.name))


def orchestrated(client: Any, plan: Any) -> tuple[float, float]:
    """vpnlab: seconds from 'creating containers' to wired, and seconds to remove."""
    from lab.runtime.lab import DockerLab

    marks: dict[str, float] = {}
    lab = DockerLab(client, plan.name)
    lab.down()
    try:
        lab.up(plan, owner="run:bench:0", source="bench", progress=lambda text: marks.setdefault(text, time.monotonic()))
    finally:
        t0 = time.monotonic()
        lab.down()
        removed = time.monotonic() - t0
    return marks["configuring router and servers"] - marks["creating containers"], removed


def plain(client: Any, plan: Any, workers: int = 8) -> tuple[float, float]:
    """The plain docker SDK: the same containers with the same files, started and veth-wired, then removed."""
    from lab.images import image_tag
    from lab.nodes import DROPPED_CAPS
    from lab.node_files import CONF_DIR, NodeFile
    from lab.runtime.lab import TOPOLOGY_FILE
    from lab.runtime.files import tar_files
    from lab.runtime.wiring import plan_ports, wiring_script

    labels = {BENCH_LABEL: "plain"}
    with ThreadPoolExecutor(workers) as pool:
        t0 = time.monotonic()
        switch = client.containers.create(image_tag("router"), command=["sleep", "infinity"], init=True,
                                          network_disabled=True, pid_mode="host", cap_drop=["ALL"],
                                          cap_add=["NET_ADMIN"], labels=labels)

        def create(node: Any) -> Any:
            container = client.containers.create(
                image_tag(node.role), command=["sleep", "infinity"], init=True, network_disabled=True,
                cap_add=node.cap_add, cap_drop=DROPPED_CAPS, devices=[f"{d}:{d}:rwm" for d in node.devices],
                sysctls=node.sysctls or None, labels=labels)
            # the same files in each node (its daemons' configs, keys and set-up script): a lab
            # made by hand needs them as much as one made by vpnlab
            files = node.files + [NodeFile(f"{CONF_DIR}/setup.sh", node.setup_script(), 0o755)]
            if node.role == "router":
                files.append(NodeFile(TOPOLOGY_FILE, plan.topology.model_dump_json(indent=2)))
            container.put_archive("/", tar_files(files))
            return container

        nodes = list(plan.nodes)
        containers = list(pool.map(create, nodes))
        list(pool.map(lambda c: c.start(), [switch, *containers]))
        pids = {}
        for node, container in zip(nodes, containers):
            container.reload()
            pids[node.name] = int(container.attrs["State"]["Pid"])
        code, output = switch.exec_run(["sh", "-c", wiring_script(plan_ports(nodes, pids))])
        if code:
            raise RuntimeError(output.decode(errors="replace"))
        made = time.monotonic() - t0
        t0 = time.monotonic()
        list(pool.map(lambda c: c.remove(force=True, v=True), [switch, *containers]))
        removed = time.monotonic() - t0
    return made, removed


def objects_figures(repeats: int) -> dict[str, Any]:
    from lab.runtime.engine import connect

    client = connect()
    plan = one_lab_plan(client)
    rows = {"vpnlab": [], "plain": []}
    for _ in range(repeats):  # alternate, so drift on the machine hits both alike
        rows["vpnlab"].append(orchestrated(client, plan))
        rows["plain"].append(plain(client, plan))
    figures: dict[str, Any] = {"containers": len(plan.nodes) + 1, "repeats": repeats}
    for who, runs in rows.items():
        figures[who] = {"make": round(statistics.median(r[0] for r in runs), 2),
                        "remove": round(statistics.median(r[1] for r in runs), 2),
                        "total": round(statistics.median(r[0] + r[1] for r in runs), 2)}
    figures["ratio"] = round(figures["vpnlab"]["total"] / figures["plain"]["total"], 2)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles")
    parser.add_argument("--protocols")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-matrix", action="store_true", help="only the orchestration-vs-plain comparison")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    console = Console(stderr=True, highlight=False)
    figures: dict[str, Any] = {}
    if not args.skip_matrix:
        figures["matrix"] = matrix_figures(args, console)
    figures["objects"] = objects_figures(args.repeats)

    out = Console(highlight=False)
    if "matrix" in figures:
        m = figures["matrix"]
        out.print(f"matrix ({m['runtime']}, kernel {m['kernel']}): wall {m['wall_seconds']} s, "
                  f"{m['summary']['as_expected']}/{m['summary']['cells']} cells as expected")
        out.print("  by phase (seconds, summed over labs; lanes run side by side): "
                  + ", ".join(f"{k} {v}" for k, v in m["phases"].items()))
    o = figures["objects"]
    out.print(f"same objects ({o['containers']} containers + their veth links, median of {o['repeats']}):")
    for who in ("vpnlab", "plain"):
        out.print(f"  {who:7} make {o[who]['make']:6.2f} s  remove {o[who]['remove']:6.2f} s  total {o[who]['total']:6.2f} s")
    out.print(f"  ratio orchestration / plain docker: {o['ratio']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
