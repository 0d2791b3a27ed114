"""One tunnel's engine failure is that tunnel's `error` verdict; the others keep theirs. And every
exec of a check has a bound, derived from the tunnel's deadline."""

from __future__ import annotations

import socket
import struct
import threading
import time

import docker.errors
import pytest
import requests

from lab.capabilities import Capabilities
from lab.check.run import EVIDENCE_SECONDS, check_seconds, check_tunnels
from lab.check.scripts import deadline
from lab.kernel import parse_probe
from lab.plan import plan_lab
from lab.runtime.bounded_exec import demultiplex, read_until_closed
from lab.runtime.lab import ExecResult
from lab.topology import parse_topology

from .conftest import FixedSecrets
from .test_kernel import FULL

TOPOLOGY = parse_topology(
    """
name: errs
servers: [{name: vpn, protocols: [wireguard, openvpn-udp]}]
clients: [{name: alice}, {name: bob}, {name: carol}]
tunnels:
  - {client: alice, server: vpn, protocol: wireguard}
  - {client: bob, server: vpn, protocol: wireguard}
  - {client: carol, server: vpn, protocol: openvpn-udp, deadline: 120}
"""
)


class FailingLab:
    """Answers like a lab whose tunnels come up, except that execs in ``broken`` raise ``error``."""

    def __init__(self, broken: str, error: Exception):
        self.broken, self.error = broken, error
        self.timeouts: list[tuple[str, str, float | None]] = []

    def exec(self, node: str, command: str, *, timeout: float | None = None) -> ExecResult:
        self.timeouts.append((node, command, timeout))
        if node == self.broken:
            raise self.error
        output = "vpnlab-result up 1200 ping answered\n" if command.endswith("check.sh") else ""
        return ExecResult(node, command, 0, output)


def api_error() -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = 500
    return docker.errors.APIError("500 Server Error", response, explanation="container 1f2e is not running")


def checked(lab: FailingLab) -> dict[str, tuple[str, str]]:
    plan = plan_lab(TOPOLOGY, Capabilities(parse_probe(FULL)).environment, FixedSecrets("errs"))
    results = check_tunnels(lab, plan, Capabilities(parse_probe(FULL)))  # type: ignore[arg-type]
    return {r.client: (r.observed, r.reason) for r in results}


def test_an_engine_error_in_one_tunnel_is_its_error_verdict_and_the_others_keep_theirs() -> None:
    verdicts = checked(FailingLab("bob", api_error()))
    assert verdicts["alice"][0] == "up" and verdicts["carol"][0] == "up"
    observed, reason = verdicts["bob"]
    assert observed == "error"
    assert reason == "the check failed: docker.errors.APIError: container 1f2e is not running"


def test_a_timeout_of_the_engine_socket_is_named_too() -> None:
    verdicts = checked(FailingLab("alice", requests.exceptions.ReadTimeout("read timed out")))
    assert verdicts["alice"] == ("error", "the check failed: requests.exceptions.ReadTimeout: read timed out")
    assert [verdicts[c][0] for c in ("bob", "carol")] == ["up", "up"]


def test_every_exec_of_a_check_is_bounded_by_the_tunnel_deadline() -> None:
    lab = FailingLab("nobody", RuntimeError())
    checked(lab)
    plan = plan_lab(TOPOLOGY, secrets=FixedSecrets("errs"))
    carol = next(ctx for ctx in plan.tunnels if ctx.tunnel.client == "carol")
    assert deadline(carol) == 120
    up_checks = {node: t for node, command, t in lab.timeouts if command.endswith("check.sh")}
    assert up_checks == {"alice": check_seconds(10), "bob": check_seconds(10), "carol": check_seconds(120)}
    assert all(t == EVIDENCE_SECONDS for _, command, t in lab.timeouts if not command.endswith("check.sh"))


def test_the_up_check_bound_outlasts_its_deadline_and_the_host_client_timeout() -> None:
    # 120 s is both the longest deadline a topology may set and the host client's timeout.
    assert check_seconds(120) > 120 + 1  # the deadline, the last ping's second, then the start's margin
    assert check_seconds(10) < check_seconds(120)


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_the_multiplexed_stream_reads_as_one_output() -> None:
    raw = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, b"cut short")[:-5]
    assert demultiplex(raw) == b"out\nerr\ncut "
    assert demultiplex(b"") == b""


def test_reading_ends_when_the_engine_closes_and_times_out_when_it_never_does() -> None:
    ours, theirs = socket.socketpair()
    theirs.sendall(frame(1, b"done\n"))
    theirs.close()
    assert demultiplex(read_until_closed(ours, 5)) == b"done\n"

    ours, theirs = socket.socketpair()
    trickle = threading.Thread(target=lambda: [theirs.sendall(b"x") or time.sleep(0.1) for _ in range(8)])
    trickle.start()  # output that keeps coming does not extend the bound
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        read_until_closed(ours, 0.3)
    assert time.monotonic() - started < 0.6
    trickle.join()
    theirs.close()


class EvidenceLab(FailingLab):
    """The up-check prints the client's evidence after its verdict, as check-tunnel.sh's EXIT trap does."""

    def exec(self, node: str, command: str, *, timeout: float | None = None) -> ExecResult:
        result = super().exec(node, command, timeout=timeout)
        if command.endswith("check.sh"):
            result.output += "==== client log\nInitialization Sequence Completed\n==== addresses\nwg0 UP 10.100.0.2/24\n"
        return result


def test_the_client_evidence_comes_with_the_verdict_in_one_exec() -> None:
    lab = EvidenceLab("nobody", RuntimeError())
    results = {r.client: r for r in check_tunnels(lab, plan_lab(TOPOLOGY, secrets=FixedSecrets("errs")),  # type: ignore[arg-type]
                                                  Capabilities(parse_probe(FULL)))}
    alice = results["alice"]
    assert alice.evidence["client"] == {"client log": "Initialization Sequence Completed", "addresses": "wg0 UP 10.100.0.2/24"}
    assert alice.evidence["check_output"] == ["vpnlab-result up 1200 ping answered"]
    assert not any(command.endswith("evidence.sh") for _, command, _ in lab.timeouts)
