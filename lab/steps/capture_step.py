"""The ``capture:`` step's packet capture: tcpdump listening on one interface of a node while
other steps run, then the pcap copied to the host and read for facts (lab.pcap_facts).

``vpnlab capture`` runs tcpdump for a fixed time; here the time is that of the steps inside,
so tcpdump runs until it is told to stop: its exec waits in a thread, the node keeps the pid
of the ``timeout`` that bounds it (a safety net should vpnlab die: it ends tcpdump anyway),
and a TERM to that pid, passed on to tcpdump, makes it flush and end. The steps start only
once tcpdump says it is listening. A capture inside another records at the same time (both
ends of a path, say), each in its own file. Capturing only listens: it sends nothing anywhere.
"""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from lab.capture import ANY, CAPTURED, NODE_LINK_IF, default_interface, node_interfaces
from lab.errors import CaptureError, InterfaceNotFound, VpnlabError
from lab.runtime.engine import LABEL_ROLE
from lab.runtime.files import read_bytes
from lab.runtime.lab import DockerLab, ExecResult
from lab.steps.model import Step

# Positional parameters: an interface name never meets the shell's parser. exec keeps the pid
# written ($$) that of timeout, which passes a TERM on to tcpdump; its exit 124: the bound passed.
# --immediate-mode: without it the kernel hands packets over in blocks, retired after up to a
# second, and a TERM soon after the last step's packets ends tcpdump before it has them.
TCPDUMP_UNTIL_STOPPED = ('echo $$ > "$3.pid"; exec timeout -s TERM "$1" '
                         'tcpdump -i "$2" -n -s 0 -U --immediate-mode -Z root -w "$3" 2> "$3.log"')
STOP = 'kill -TERM "$(cat "$1.pid")"'
LISTENING = 'grep -q "listening on" "$1.log"'
READY_SECONDS = 20.0  # for tcpdump to open the interface
SETTLE_SECONDS = 0.5  # after the steps, for packets still on their way and for tcpdump to write them
STOP_SECONDS = 30.0  # for tcpdump to flush and end once told to
SHORT_EXEC = 30.0
STEP_ALLOWANCE = 600  # seconds a step other than a wait may take, in the capture's safety bound
TIMED_OUT = 124  # timeout's exit when the bound passed before anyone stopped it: the step fails


def capture_bound(during: list[Step]) -> int:
    """Seconds after which tcpdump ends by itself, should nobody stop it: beyond the steps' time
    (a wait's seconds, an inner capture's own bound, STEP_ALLOWANCE for any other step)."""
    def bound(step: Step) -> float:
        if step.capture:
            return capture_bound(step.capture.during)
        return step.wait if step.wait is not None else STEP_ALLOWANCE

    return int(sum(bound(s) for s in during) + 60)


def pcap_path(directory: Path, lab: str, where: str, node: str, interface: str) -> Path:
    """``where`` (steps[2], or steps[2].capture.during[0] inside another capture) as steps2, steps2-during0."""
    place = re.sub(r"\[(\d+)\]", r"\1", where).replace(".capture.during", "-during")
    return directory / f"{lab}-{place}-{node}-{interface}.pcap"


@dataclass
class Listening:
    """tcpdump running in ``node`` until ``stop``."""

    lab: DockerLab
    node: str
    container: Any
    interface: str
    remote: str  # the pcap in the node
    ran: Future[ExecResult]
    pool: ThreadPoolExecutor
    log: str = field(default="")

    def stop(self) -> tuple[bytes, int | None]:
        """The capture's bytes and tcpdump's packet count (None: it did not say); the node's files
        removed. CaptureError when tcpdump failed or ran past its bound."""
        try:
            if not self.ran.done():
                time.sleep(SETTLE_SECONDS)
            with suppress(VpnlabError, docker.errors.APIError):  # an ended tcpdump has nothing to stop
                self.sh(STOP)
            ran = self.ran.result(timeout=STOP_SECONDS)
            self.log = self.sh('cat "$1.log"').output
            if ran.exit_code != 0:
                why = "its safety bound passed" if ran.exit_code == TIMED_OUT else f"exit {ran.exit_code}"
                raise CaptureError(f"{self.node}: tcpdump on {self.interface} failed ({why}): {self.log.strip()[-300:]}")
            data = read_bytes(self.container, self.remote)
        finally:
            self.pool.shutdown(wait=False)
            with suppress(VpnlabError, docker.errors.APIError):  # the capture's own error is the one to tell
                self.sh('rm -f "$1" "$1.pid" "$1.log"')
        counted = CAPTURED.search(self.log)
        return data, int(counted.group(1)) if counted else None

    def sh(self, script: str) -> ExecResult:
        return self.lab.exec(self.node, ["sh", "-c", script, "sh", self.remote], container=self.container, timeout=SHORT_EXEC)


def start_capture(lab: DockerLab, node: str, interface: str | None, bound: int) -> Listening:
    """tcpdump listening on ``node``'s ``interface`` (default as ``vpnlab capture``'s).

    Raises:
        InterfaceNotFound: the node has no such interface.
        CaptureError: tcpdump did not start listening.
    """
    container = lab.container(node)
    role = container.labels.get(LABEL_ROLE, "")
    interface = interface or default_interface(role)
    known = node_interfaces(lab, node)
    if interface not in (*known, ANY):
        raise InterfaceNotFound(lab.name, node, interface, [*known, ANY])
    remote = f"/tmp/vpnlab-capture-{uuid.uuid4().hex[:12]}.pcap"
    pool = ThreadPoolExecutor(max_workers=1)
    ran = pool.submit(lab.exec, node, ["sh", "-c", TCPDUMP_UNTIL_STOPPED, "sh", str(bound), interface, remote],
                      container=container, timeout=bound + STOP_SECONDS)
    listening = Listening(lab, node, container, interface, remote, ran, pool)
    deadline = time.monotonic() + READY_SECONDS
    try:
        while not ran.done() and time.monotonic() < deadline:
            if listening.sh(LISTENING).exit_code == 0:
                return listening
            time.sleep(0.2)
    except BaseException:  # an exec timed out, Ctrl-C: tcpdump must not run on to its bound
        with suppress(Exception):
            listening.stop()
        raise
    try:
        listening.stop()
    except CaptureError as exc:  # tcpdump ended: what it said is the error
        raise CaptureError(f"{node}: tcpdump did not start listening on {interface}: {exc}") from None
    raise CaptureError(f"{node}: tcpdump did not start listening on {interface} within {READY_SECONDS:g} s: "
                       f"{listening.log.strip()[-300:]}")


def on_path(node: str, role: str, interface: str, client: str, server: str) -> bool:
    """Whether a tunnel's own packets (between ``client`` and ``server``) cross this interface:
    any of a router's but its loopback, or the link (or every interface) of either end."""
    if interface == "lo":
        return False
    if role == "router":  # the router's own tunnel (client: router) leaves through wan0 too
        return True
    return node in (client, server) and interface in (NODE_LINK_IF, ANY)


def role_of(lab: DockerLab, node: str) -> str:
    return str(lab.container(node).labels.get(LABEL_ROLE, ""))


def call_id_fact(ids_by_destination: dict[str, list[int]], router_wan: str, client: str) -> str | None:
    """Whether the router rewrote the PPTP call ID of the server's GRE towards ``client`` (its LAN
    address): the IDs it arrived with at ``router_wan`` against those it left with; None unless
    the capture holds both sides (``interface: any`` on the router)."""
    wan, lan = ids_by_destination.get(router_wan, []), ids_by_destination.get(client, [])
    if not wan or not lan or client == router_wan:  # the router's own call: one side, nothing to compare
        return None
    verdict = "the same on both sides: not rewritten" if sorted(wan) == sorted(lan) else "rewritten by the router"
    return (f"GRE call ID from the server: {', '.join(f'0x{i:04x}' for i in wan)} to the router's {router_wan}, "
            f"{', '.join(f'0x{i:04x}' for i in lan)} on to {client} ({verdict})")
