"""A tunnel whose packets a router drop rule keeps dropping is told so before its deadline
(lab.check.blocked); drops of other flows, or too few, tell nothing."""

from __future__ import annotations

import threading
import time

import pytest

from lab.check import blocked
from lab.plan import plan_lab
from lab.runtime.lab import ExecResult
from lab.topology import parse_topology

from .conftest import FixedSecrets

TOPOLOGY = parse_topology(
    """
name: blk
servers: [{name: vpn, protocols: [wireguard, openvpn-udp]}]
clients: [{name: alice}, {name: bob}]
tunnels:
  - {client: alice, server: vpn, protocol: openvpn-udp}
  - {client: bob, server: vpn, protocol: wireguard}
"""
)
HEAD = "chain FORWARD\nChain FORWARD (policy DROP 0 packets, 0 bytes)\n    pkts      bytes target     prot opt in     out     source               destination\n"


def rule(packets: int, comment: str) -> str:
    return f"{packets:>8} {packets * 60:>10} DROP       17   --  *      *       0.0.0.0/0            0.0.0.0/0            /* {comment} */\n"


class FakeStream:
    """A reading per poll, as the router's loop prints them, split across reads at odd places."""

    def __init__(self, lab: RouterLab):
        self.lab, self.pending = lab, b""

    def read(self, seconds: float) -> bytes | None:
        if not self.pending:
            time.sleep(0.02)
            self.pending = (self.lab.reading() + blocked.END + "\n").encode()
        chunk, self.pending = self.pending[:100], self.pending[100:]
        return chunk

    def close(self) -> None:
        pass


class RouterLab:
    """The router answers with the counters of the moment; notes written to clients are kept."""

    name = "blk"

    def __init__(self) -> None:
        self.counts = {"vpnlab: block udp/1194": 0, "vpnlab: block udp/4000": 0}
        self.notes: dict[str, list[tuple[str, str]]] = {}
        self.lock = threading.Lock()
        self.streams = 0

    def reading(self) -> str:
        with self.lock:
            return HEAD + "".join(rule(n, c) for c, n in self.counts.items())

    def stream(self, node: str, cmd: list[str]) -> FakeStream:
        assert node == "router" and cmd[0] == "timeout"  # the loop in the router is bounded in time
        self.streams += 1
        return FakeStream(self)

    def exec(self, node: str, command, *, timeout: float | None = None) -> ExecResult:
        assert timeout is not None  # every exec is bounded
        assert isinstance(command, list) and command[:2] == ["sh", "-c"]  # the note is an argument
        self.notes.setdefault(node, []).append((command[4], command[5]))
        return ExecResult(node, " ".join(command), 0, "")

    def drop(self, comment: str, packets: int) -> None:
        with self.lock:
            self.counts[comment] += packets


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocked, "POLL_SECONDS", 0.02)


def contexts():
    plan = plan_lab(TOPOLOGY, secrets=FixedSecrets("blk"))
    return {ctx.tunnel.client: ctx for ctx in plan.tunnels}


def wait_for(predicate, seconds: float = 2.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_rule_dropping_the_tunnels_flow_twice_tells_its_client() -> None:
    lab, ctx = RouterLab(), contexts()
    with blocked.watched(lab, "router", ctx["alice"]), blocked.watched(lab, "router", ctx["bob"]):
        time.sleep(0.1)  # the first reading: the tunnels' baseline
        lab.drop("vpnlab: block udp/1194", 1)
        time.sleep(0.1)
        assert lab.notes == {}  # one packet may have been in flight: not yet
        lab.drop("vpnlab: block udp/1194", 1)
        assert wait_for(lambda: "alice" in lab.notes)
        time.sleep(0.1)
    assert lab.notes["alice"] == [(blocked.NOTE, ctx["alice"].blocked_path)]  # once
    assert "bob" not in lab.notes  # wireguard's flow (udp/51820) met no rule


def test_drops_before_the_attempt_began_are_not_counted() -> None:
    lab, ctx = RouterLab(), contexts()
    lab.drop("vpnlab: block udp/1194", 50)  # an earlier attempt's
    with blocked.watched(lab, "router", ctx["alice"]):
        time.sleep(0.15)
        assert lab.notes == {}
        lab.drop("vpnlab: block udp/1194", 2)
        assert wait_for(lambda: "alice" in lab.notes)


def test_the_attempt_quotes_only_its_own_drops() -> None:
    lab, ctx = RouterLab(), contexts()
    lab.drop("vpnlab: block udp/1194", 50)  # an earlier check's
    with blocked.watched(lab, "router", ctx["alice"]) as attempt:
        assert attempt.began.is_set() and attempt.since is not None  # read before the attempt began
        lab.drop("vpnlab: block udp/1194", 3)
    after = blocked.rule_hits(lab.reading())
    assert attempt.hits(after) == ([blocked.RuleHit("FORWARD", "vpnlab: block udp/1194", 3)], True)


def test_a_router_that_cannot_be_read_delays_nothing_and_its_counts_say_so() -> None:
    class Unreadable(RouterLab):
        def stream(self, node: str, cmd: list[str]) -> FakeStream:
            raise RuntimeError("the engine does not answer")

    lab, ctx = Unreadable(), contexts()
    lab.drop("vpnlab: block udp/1194", 5)
    started = time.monotonic()
    with blocked.watched(lab, "router", ctx["alice"]) as attempt:
        pass
    assert time.monotonic() - started < 1  # not the first reading's wait (5 s)
    after = blocked.rule_hits(lab.reading())
    assert attempt.hits(after) == (after, False)  # cumulative, and said to be


def test_a_rule_of_another_flow_tells_nothing() -> None:
    lab, ctx = RouterLab(), contexts()
    with blocked.watched(lab, "router", ctx["alice"]):
        lab.drop("vpnlab: block udp/4000", 10)
        time.sleep(0.15)
    assert lab.notes == {}


def test_the_watcher_stops_with_its_last_tunnel_and_a_new_one_starts_after() -> None:
    lab, ctx = RouterLab(), contexts()
    with blocked.watched(lab, "router", ctx["alice"]):
        first = blocked._watchers[(id(lab), "router")]
    assert (id(lab), "router") not in blocked._watchers and first.stop.is_set()
    with blocked.watched(lab, "router", ctx["alice"]):
        assert blocked._watchers[(id(lab), "router")] is not first
    assert lab.streams == 2  # one stream of readings per watcher, not an exec per reading
