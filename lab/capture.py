"""``vpnlab capture``: a packet capture of one node's interface, copied to the host as a pcap.

tcpdump runs in the node (every image has it, from the base image) for a bounded time and
writes a file there; the file comes to the host through the engine's archive API (no
output stream to demultiplex, so the bytes arrive as tcpdump wrote them) and is then
removed from the node. Capturing only listens: it sends nothing anywhere.
"""

from __future__ import annotations

import re
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
from rich.console import Console

from lab.display import shown
from lab.errors import CaptureError, InterfaceNotFound, VpnlabError
from lab.pcap_facts import known_flows, pcap_facts
from lab.protocols.base import Flow
from lab.runtime.engine import LABEL_ROLE
from lab.runtime.files import read_bytes
from lab.runtime.lab import DockerLab
from lab.router.rules import WAN_IF

MIN_SECONDS, MAX_SECONDS = 1, 3600
NODE_LINK_IF = "eth0"  # a client's or server's one lab link (lab.nodes)
ANY = "any"  # tcpdump's every-interface pseudo device
# How long beyond the capture the host waits for tcpdump to flush and end, and for short execs.
EXEC_MARGIN, SHORT_EXEC = 30.0, 30.0
# Positional parameters, not a formatted string: an interface name never meets the shell's parser.
# timeout's SIGINT lets tcpdump flush and print its counts; its exit 124 means "the time was up".
# --immediate-mode: packets are handed over as they come, not when a buffer fills (without it a
# capture ended soon after its last packets lost them: found by the capture step).
TCPDUMP = ('timeout -s INT "$1" tcpdump -i "$2" -n -s 0 -U --immediate-mode -Z root -w "$3"; rc=$?; '
           '[ "$rc" = 124 ] && exit 0; exit "$rc"')
CAPTURED = re.compile(r"(\d+) packets? captured")


@dataclass(frozen=True)
class Capture:
    lab: str
    node: str
    interface: str
    seconds: int
    path: Path
    packets: int | None  # as tcpdump counted them (None: it did not say)
    facts: list[str] = field(default_factory=list)


def checked_seconds(value: str | int) -> int:
    """``--seconds`` as a whole number from MIN_SECONDS to MAX_SECONDS; CaptureError otherwise."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise CaptureError(f"--seconds must be a whole number from {MIN_SECONDS} to {MAX_SECONDS}, not '{value}'")
    return seconds


def default_interface(role: str) -> str:
    """The router's WAN side (where a tunnel's packets leave the NAT), else the node's lab link."""
    return WAN_IF if role == "router" else NODE_LINK_IF


def node_interfaces(lab: DockerLab, node: str) -> list[str]:
    result = lab.exec(node, ["ls", "/sys/class/net"], timeout=SHORT_EXEC)
    if not result.succeeded:
        raise CaptureError(f"{node}: cannot list its interfaces: {result.output.strip()[-300:]}")
    return sorted(result.output.split())


def capture(lab: DockerLab, node: str, interface: str | None, seconds: int, output: Path | None) -> Capture:
    """Capture ``node``'s ``interface`` for ``seconds`` into ``output`` on the host.

    Raises:
        NodeNotFound, LabNotFound: from the lab.
        InterfaceNotFound: the node has no such interface.
        CaptureError: tcpdump failed in the node, or the file could not be written.
    """
    container = lab.container(node)
    interface = interface or default_interface(container.labels.get(LABEL_ROLE, ""))
    known = node_interfaces(lab, node)
    if interface not in (*known, ANY):
        raise InterfaceNotFound(lab.name, node, interface, [*known, ANY])
    output = output or Path(f"{lab.name}-{node}-{interface}.pcap")
    remote = f"/tmp/vpnlab-capture-{uuid.uuid4().hex[:12]}.pcap"
    try:
        ran = lab.exec(node, ["sh", "-c", TCPDUMP, "sh", str(seconds), interface, remote],
                       container=container, timeout=seconds + EXEC_MARGIN)
        if not ran.succeeded:
            raise CaptureError(f"{node}: tcpdump on {interface} failed (exit {ran.exit_code}): {ran.output.strip()[-300:]}")
        data = read_bytes(container, remote)
    finally:
        with suppress(VpnlabError, docker.errors.APIError):  # the capture's own error is the one to tell
            lab.exec(node, ["rm", "-f", remote], container=container, timeout=SHORT_EXEC)
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise CaptureError(f"cannot write {output}: {exc.strerror or exc}") from None
    counted = CAPTURED.search(ran.output)
    return Capture(lab.name, node, interface, seconds, output, int(counted.group(1)) if counted else None,
                   pcap_facts(data, known_flows(lab_moved_flows(lab))))


def lab_moved_flows(lab: DockerLab) -> list[tuple[str, Flow]]:
    """The flows the running lab's tunnels moved off their protocol's ports (OpenVPN on 443), read
    from the topology its router keeps; none when it cannot be read (the registry's ports stay)."""
    from lab.protocols.ports import moved_flows

    try:
        return moved_flows(lab.topology())
    except (VpnlabError, docker.errors.APIError):
        return []


def print_capture(result: Capture, console: Console) -> None:
    packets = "" if result.packets is None else f"{result.packets} packet(s), "
    console.print(f"wrote {shown(result.path)}: {packets}{shown(result.node)} {shown(result.interface)} "
                  f"for {result.seconds} s (lab '{shown(result.lab)}'); 'tcpdump -r {shown(result.path)}' reads it",
                  soft_wrap=True)  # a path is not to be cut
    for fact in result.facts:
        console.print(f"  {shown(fact)}")
