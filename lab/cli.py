"""The ``vpnlab`` command.

Exit codes: 0 every tunnel as expected (or the command did what it said),
1 a tunnel differed from its expectation, 2 bad input or a missing
prerequisite (the message says which). Errors print one message, no traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lab import __version__
from lab.display import shown
from lab.exits import errors, friendly
from lab.errors import VpnlabError

# Wide enough for the reasons when the output is a CI log rather than a terminal.
console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 160)


def session():
    from lab.orchestrate import new_session

    return new_session(console=errors)


def host_engine():
    """The host's engine client, for commands that only look for labs (no images, no probe)."""
    from lab.runtime.engine import connect

    return connect()


def runtime_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    from lab.runtime.registry import CHOICES, choices_help

    return click.option(
        "--runtime", type=click.Choice(CHOICES), default="auto", show_default=True, envvar="VPNLAB_RUNTIME",
        help=choices_help(),
    )(fn)


def where_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    from lab.runtime.registry import CHOICES, RUNTIMES

    each = ", ".join(f"'{name}' {cls.description}" for name, cls in RUNTIMES.items())
    return click.option(
        "--runtime", type=click.Choice(CHOICES), default="auto", show_default=True,
        help=f"Where to look for labs: {each}; 'auto' all of them.",
    )(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vpnlab")
def main() -> None:
    """vpnlab: prove which VPN tunnels come up through which NAT router configuration.

    A topology (YAML) names LAN clients, a NAT router and VPN servers, and the
    tunnels expected up or down. vpnlab brings it up as Docker containers with
    real daemons and a real Linux router, checks every tunnel and shows the
    evidence.
    """


@main.command()
@click.argument("topology", type=click.Path(dir_okay=False, path_type=Path))
@friendly
def validate(topology: Path) -> None:
    """Check a topology file and report every problem with its location."""
    from lab.topology import load_topology

    lab = load_topology(topology)
    console.print(f"{shown(topology)}: ok — lab '{shown(lab.name)}', {len(lab.clients)} client(s), "
                  f"{len(lab.servers)} server(s), {len(lab.tunnels)} tunnel(s)")


@main.group()
def images() -> None:
    """Build the lab's container images."""


@images.command("build")
@click.option("--force", is_flag=True, help="Rebuild even when nothing changed.")
@friendly
def images_build(force: bool) -> None:
    """Build the base, router, client and server images; only what changed is rebuilt."""
    from lab.images import ensure_images, summary_table
    from lab.runtime.engine import connect

    results = ensure_images(connect(), console=errors, force=force)
    if not any(r.built for r in results):  # ensure_images showed the table if it built anything
        console.print(summary_table(results))


@main.command()
@click.argument("topology", type=click.Path(dir_okay=False, path_type=Path))
@runtime_option
@friendly
def up(topology: Path, runtime: str) -> None:
    """Bring a lab up and leave it running (idempotent); tunnels start with 'check'."""
    from lab import orchestrate
    from lab.topology import load_topology

    model = load_topology(topology)
    lab_session = session()
    try:
        chosen = lab_session.open_runtime(runtime, model)
        orchestrate.up(lab_session, orchestrate.plan_for(lab_session, model), source=str(topology))
    except BaseException:
        lab_session.close()
        raise
    lab_session.close(keep_guest=True)
    name, where = shown(model.name), f"{shown(chosen.name)}: {shown(chosen.reason)}"
    console.print(f"lab '{name}' is up ({where}): 'vpnlab check {name}' tests its tunnels, 'vpnlab down {name}' removes it")


@main.command()
@click.argument("name", required=False)
@click.option("--lab", "lab_name", help="The lab, as NAME gives it (as exec and capture take it); either is needed when several run.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the result as JSON.")
@where_option
@friendly
def check(name: str | None, lab_name: str | None, json_file: Path | None, runtime: str) -> None:
    """Start and check every tunnel of a running lab (NAME, or --lab NAME; without either, the one lab running)."""
    from lab import orchestrate
    from lab.runtime.registry import find_named_or_only_lab

    if name and lab_name and name != lab_name:
        raise click.UsageError(f"two labs named: '{name}' and --lab '{lab_name}'; give one")
    name = name or lab_name or find_named_or_only_lab(host_engine(), None, runtime)[1].name
    _finish(orchestrate.check(session(), name, runtime), json_file)


@main.command()
@click.argument("topology", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the result as JSON.")
@click.option("--keep", is_flag=True, help="Leave the lab running afterwards.")
@click.option("--captures", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the capture steps' pcaps (default: the --json file's, else the current one).")
@runtime_option
@friendly
def run(topology: Path, json_file: Path | None, keep: bool, captures: Path | None, runtime: str) -> None:
    """Bring a lab up, check every tunnel, print the table, tear down."""
    from lab import orchestrate
    from lab.topology import load_topology

    model = load_topology(topology)
    captures = captures or (json_file.parent if json_file else None)
    result = orchestrate.run(session(), model, source=str(topology), runtime=runtime, keep=keep, captures=captures)
    _finish(result, json_file)


def _finish(result: Any, json_file: Path | None) -> None:
    from lab.report import print_result

    if json_file:  # first: whatever happens while printing, the run's result is kept
        json_file.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    print_result(result, console)
    if json_file:
        console.print(f"wrote {shown(json_file)}")
    if getattr(result, "teardown", None):
        raise VpnlabError(result.teardown)  # after the result: the one error, exit 2
    sys.exit(0 if result.passed else 1)


@main.command()
@click.argument("name", required=False)
@click.option("--all", "everything", is_flag=True, help="Remove every vpnlab lab on this engine.")
@where_option
@friendly
def down(name: str | None, everything: bool, runtime: str) -> None:
    """Remove a lab (or all of them): containers, networks and volumes, found by label."""
    from lab.runtime.lab import down_all, remove_each
    from lab.runtime.registry import find_lab, lab_engines, stop_idle_engines

    if not name and not everything:
        raise click.UsageError("name a lab or pass --all")
    host = host_engine()
    try:  # every engine's labs, then the idle guests, whatever fails on the way
        removed = remove_each([lambda c=engine.client: down_all(c) for engine in lab_engines(host, runtime)]
                              if everything else [find_lab(host, name, runtime)[1].down])
    finally:
        stopped = stop_idle_engines(host)
    console.print(f"removed {removed} object(s)" + (f", stopped {stopped} idle UML guest(s)" if stopped else ""))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@where_option
@friendly
def status(as_json: bool, runtime: str) -> None:
    """List the running labs and their nodes."""
    from lab.runtime.lab import list_labs
    from lab.runtime.registry import lab_engines

    rows = []
    for engine in lab_engines(host_engine(), runtime):
        rows += [(engine.where, lab) for lab in list_labs(engine.client)]
    if as_json:
        console.print_json(json.dumps([{"runtime": where, **lab.__dict__} for where, lab in rows]))
        return
    if not rows:
        console.print("no labs")
        return
    table = Table("lab", "runtime", "source", "held by", "nodes")
    for where, lab in rows:
        nodes = ", ".join(f"{n} ({s})" for n, s in sorted(lab.nodes.items()))
        table.add_row(shown(lab.name), shown(where), shown(lab.source), shown(lab.owner), shown(nodes))
    console.print(table)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--lab", "lab_name", help="The lab (needed when several run).")
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@where_option
@friendly
def exec(lab_name: str | None, node: str, command: tuple[str, ...], runtime: str) -> None:  # noqa: A001
    """Run a command in a node: vpnlab exec router -- iptables-save"""
    from lab.runtime.registry import find_named_or_only_lab

    _, lab = find_named_or_only_lab(host_engine(), lab_name, runtime)
    result = lab.exec(node, list(command))
    sys.stdout.write(result.output)
    sys.exit(result.exit_code)


@main.command("capture")
@click.option("--lab", "lab_name", help="The lab (needed when several run).")
@click.argument("node")
@click.option("--interface", "-i", help="The node's interface, or 'any' (default: the router's WAN side, another node's eth0).")
@click.option("--seconds", default="10", show_default=True, metavar="N", help="How long to capture, 1 to 3600.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="The pcap file (default: LAB-NODE-IF.pcap).")
@where_option
@friendly
def capture_command(lab_name: str | None, node: str, interface: str | None, seconds: str, output: Path | None,
                    runtime: str) -> None:
    """Capture a node's packets to a pcap file (tcpdump in the node) and print what the VPN flows in it show."""
    from lab.capture import capture, checked_seconds, print_capture
    from lab.runtime.registry import find_named_or_only_lab

    duration = checked_seconds(seconds)
    _, lab = find_named_or_only_lab(host_engine(), lab_name, runtime)
    print_capture(capture(lab, node, interface, duration, output), console)


@main.command()
@click.option("--dry-run", is_flag=True, help="Say what would be installed and started; change nothing.")
@friendly
def setup(dry_run: bool) -> None:
    """Prepare this machine: system packages (Docker engine, debootstrap, User-Mode Linux...), a running engine
    and the unprivileged user User-Mode Linux guests run as (vpnlab-guest).

    Idempotent, never asks anything: runs as root, or through password-less sudo.
    """
    from lab.setup import run_setup

    sys.exit(run_setup(dry_run=dry_run))


@main.command("init")
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The starter topology's name (default: from the folder's name).")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@friendly
def init_command(directory: Path, name: str | None, force: bool) -> None:
    """Write a starter project: a topology, a pytest file, the test dependency and a CI workflow."""
    from lab.init_project import write_project

    for path in write_project(directory, name=name, force=force):
        console.print(f"wrote {shown(path)}")
    console.print(f"next: 'vpnlab setup' (once per machine), then 'python -m pytest tests/test_vpn.py' in {shown(directory)}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--host-only", is_flag=True, help="Only the host's engine (other runtimes may boot a guest to probe it).")
@friendly
def doctor(as_json: bool, host_only: bool) -> None:
    """What this machine can run: engine, images, kernel features per protocol, for every available runtime."""
    from lab.doctor import render, run_doctor
    from lab.orchestrate import Session, new_session
    from lab.runtime.engine import connect
    from lab.runtime.registry import HOST, RUNTIMES

    sessions: list[Session] = []

    def opened(name: str) -> Callable[[], Any]:
        def engine() -> Any:
            lab_session = new_session(console=None if as_json else errors)
            sessions.append(lab_session)
            runtime = lab_session.open_runtime(name)
            for notice in runtime.notices():
                errors.print(f"[yellow]{shown(notice)}[/yellow]")
            return runtime.client

        return engine

    extra = []
    for name, kind in RUNTIMES.items():
        if name == HOST or host_only:
            continue
        usable, why = kind.available()
        if usable:
            extra.append((f"{name} ({why})", opened(name)))
        else:
            errors.print(f"[dim]{shown(name)} runtime not available: {shown(why)}[/dim]")
    try:
        report = run_doctor(lambda: connect(timeout=60), extra_runtimes=extra)
    finally:
        for lab_session in sessions:
            lab_session.close()
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        render(report, console)
    sys.exit(0 if report.ok else 1)


REPORT_FORMATS = {"json": "JSON", "junit": "JUnit XML (a test per cell)", "markdown": "Markdown",
                  "html": "one self-contained HTML file"}


def _report_file(what: str, whose: str = "the merged matrix") -> Callable[..., Any]:
    return click.option(f"--{what}", f"{what}_file", type=click.Path(dir_okay=False, path_type=Path),
                        help=f"Write {whose} as {REPORT_FORMATS[what]}.")


@main.command()
@click.option("--profiles", metavar="A,B,FILE.yml",
              help="Router profiles, comma-separated: built-in names or YAML files (default: every built-in one).")
@click.option("--protocols", metavar="P,Q", help="Protocols, comma-separated (default: every registered one).")
@click.option("--jobs", type=int, help="Labs at once (default: one per core with UML, a guest each; 4 per host engine).")
@click.option("--shard", metavar="K/N", help="Run only the K-th of N deterministic shares of the cells (CI).")
@runtime_option
@click.option("--engine", "engine_refs", multiple=True, metavar="URL_OR_CONTEXT",
              help="Run labs on this Docker engine (a DOCKER_HOST URL or a context name); repeat to spread labs over several.")
@_report_file("json", "the matrix")
@_report_file("junit", "the matrix")
@_report_file("markdown", "the matrix")
@_report_file("html", "the matrix")
@friendly
def matrix(profiles: str | None, protocols: str | None, jobs: int | None, shard: str | None, runtime: str,
           engine_refs: tuple[str, ...], json_file: Path | None, junit_file: Path | None,
           markdown_file: Path | None, html_file: Path | None) -> None:
    """Every protocol through every router profile: one lab per profile, the matrix with its evidence.

    Exits 0 when every cell equals its profile's expectation, 1 otherwise, 2 for bad input.
    """
    from lab.matrix.reports import write_reports
    from lab.matrix.run import MatrixOptions, run_matrix
    from lab.matrix.terminal import print_matrix

    options = MatrixOptions(profiles, protocols, jobs, shard, runtime, list(engine_refs))
    result = run_matrix(options, console=errors)
    written = write_reports(result, json=json_file, junit=junit_file, markdown=markdown_file, html=html_file)
    print_matrix(result, console)
    for path in written:
        console.print(f"wrote {shown(str(path))}")
    sys.exit(0 if result.passed else 1)


@main.group()
def report() -> None:
    """Matrix results: join the shards of a CI run into one matrix and write its reports."""


@report.command("merge")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@_report_file("json")
@_report_file("junit")
@_report_file("markdown")
@_report_file("html")
@friendly
def report_merge(results: tuple[Path, ...], json_file: Path | None, junit_file: Path | None,
                 markdown_file: Path | None, html_file: Path | None) -> None:
    """Join matrix results (one per shard) into one matrix: print it, write the reports.

    Exits 0 when every cell equals its expectation, 1 otherwise (a skipped or missing cell too).
    """
    from lab.matrix.merge import merge
    from lab.matrix.reading import load
    from lab.matrix.reports import write_reports
    from lab.matrix.terminal import print_matrix

    merged = merge([load(path) for path in results], sources=[str(path) for path in results])
    written = write_reports(merged, json=json_file, junit=junit_file, markdown=markdown_file, html=html_file)
    print_matrix(merged, console)
    for path in written:
        console.print(f"wrote {shown(str(path))}")
    sys.exit(0 if merged.passed else 1)


if __name__ == "__main__":
    main()
