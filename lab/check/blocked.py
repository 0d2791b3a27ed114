"""Deciding a tunnel down before its deadline, on the router's evidence that it cannot come up.

Every drop rule vpnlab writes for a flow (a passthrough switch off, a ``block`` entry, a strict
router's "not allowed out") matches by protocol and port alone and sits before the accept of
established traffic (templates/router/rules.v4.j2). Once such a rule has dropped a tunnel's
packets, every later packet of that flow meets it too: the tunnel cannot come up however long
its daemon retries. Waiting for the protocol's deadline (40 s for L2TP in a User-Mode Linux
guest) would only make a "down" slow, which is not what a user should wait for.

While tunnels are being checked, one watcher per lab reads the counters of the router's
FORWARD rules every poll (one exec in the router streams the readings). When a drop rule of a tunnel's flows has counted ``MIN_DROPS``
packets more than when that tunnel's attempt began (its first packet and a retry), the
watcher leaves a note in the client (``TunnelContext.blocked_path``); the up-check reads it at
its next poll and ends "down", with the deadline it did not wait for named. The counters themselves are
quoted in the reason by ``explain``, as for any other down verdict.

The reading a tunnel's attempt began with is also what its evidence counts drops from
(``Attempt.since``): a second ``vpnlab check`` of a running lab quotes the drops of its own
attempt, never the earlier attempt's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lab.check.evidence import EVIDENCE_SECONDS, RuleHit, drops_for, rule_hits
from lab.protocols.base import TunnelContext
from lab.protocols.ports import flows_of

if TYPE_CHECKING:  # pragma: no cover
    from lab.runtime.lab import DockerLab

MIN_DROPS = 2  # its first packet and one retry: a packet in flight when the rules changed is not enough
POLL_SECONDS = 1.0  # times the runtime's time_scale
STREAM_SECONDS = 300  # one reading stream's life at most (then another starts, while tunnels are watched)
FIRST_READING_SECONDS = 5.0  # times the time_scale: how long an attempt waits for a baseline before it starts
END = "==== end of reading"
# One exec for all the readings: in a one-CPU User-Mode Linux guest an exec costs seconds of the
# CPU the daemons being checked need, an iptables run in a running shell little.
LOOP = ('i=0; while [ "$i" -lt "$1" ]; do for c in FORWARD INPUT; do echo "chain $c"; iptables -L "$c" -v -n -x; done; '
        'echo "$2"; i=$((i + 1)); sleep "$3"; done')
NOTE = "its packets meet a router drop rule that matches every packet of their flow"


def reading_command(poll: float) -> list[str]:
    """The router's counters every ``poll`` s, each reading ended by END; bounded in time by
    ``timeout`` (a reader gone leaves no loop behind)."""
    return ["timeout", str(STREAM_SECONDS), "sh", "-c", LOOP, "sh", str(int(STREAM_SECONDS / poll) + 1), END, f"{poll:g}"]


Counts = dict[tuple[str, str], int]  # (chain, rule comment) -> packets


@dataclass(eq=False)
class Attempt:
    """One tunnel's watched attempt. ``since``: the router's counters when it began (None when
    the router could not be read in time); drops are counted from there."""

    ctx: TunnelContext
    since: Counts | None = None
    began: threading.Event = field(default_factory=threading.Event)
    started: bool = False  # the up-check runs: a baseline read from now on is later than its start
    late: bool = False  # ``since`` was read after the start (it still serves the early decision)

    def hits(self, hits: list[RuleHit]) -> tuple[list[RuleHit], bool]:
        """``hits`` (cumulative counters read after the attempt) as counted during it, and whether
        they are (False: no baseline from before its start; the counters are since the rules were
        loaded)."""
        if self.since is None or self.late:
            return hits, False
        return _since(hits, self.since), True


def _since(hits: list[RuleHit], baseline: Counts) -> list[RuleHit]:
    during = [RuleHit(h.chain, h.comment, h.packets - baseline.get((h.chain, h.comment), 0)) for h in hits]
    return [h for h in during if h.packets > 0]


class _Watcher:
    """Reads one lab's router counters while some tunnel of it is being checked."""

    def __init__(self, lab: DockerLab, router: str, poll: float):
        self.lab, self.router, self.poll = lab, router, poll
        self.lock = threading.Lock()
        self.tunnels: dict[str, Attempt] = {}  # tunnel id -> its attempt, while watched
        self.latest: Counts | None = None  # the last reading
        self.unreadable = False  # the router's counters could not be read: no attempt waits for them
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, attempt: Attempt) -> bool:
        """Watch the attempt; False when this watcher has stopped meanwhile (take a new one)."""
        with self.lock:
            if self.stop.is_set():
                return False
            # Its baseline is the last reading (taken before the attempt begins), or the next one
            # when there is none yet (``watched`` waits for it before the attempt begins).
            if self.latest is not None:
                attempt.since = self.latest
            if self.latest is not None or self.unreadable:
                attempt.began.set()
            self.tunnels[attempt.ctx.tunnel.id] = attempt
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="vpnlab-blocked", daemon=True)
                self.thread.start()
            return True

    def remove(self, attempt: Attempt) -> bool:
        """Forget the attempt; True when no tunnel is left (the watcher then stops)."""
        with self.lock:
            if self.tunnels.get(attempt.ctx.tunnel.id) is attempt:
                del self.tunnels[attempt.ctx.tunnel.id]
            if self.tunnels:
                return False
            self.stop.set()
            return True

    def readings(self) -> Iterator[list[RuleHit]]:
        """The router's drop counters, one list per reading, until the watcher stops."""
        while not self.stop.is_set():
            stream = self.lab.stream(self.router, reading_command(self.poll))
            text = ""
            try:
                while not self.stop.is_set():
                    data = stream.read(1.0)
                    if data is None:
                        continue
                    if not data:
                        break  # the loop's time is up: another one starts
                    text += data.decode(errors="replace")
                    while END + "\n" in text:
                        block, text = text.split(END + "\n", 1)
                        yield rule_hits(block)
            finally:
                stream.close()

    def run(self) -> None:
        try:
            for hits in self.readings():
                self.judge(hits)
        except Exception:  # noqa: BLE001 - the router could not be read: the deadlines decide, as without this
            with self.lock:
                self.unreadable = True
                for attempt in self.tunnels.values():
                    attempt.began.set()

    def judge(self, hits: list[RuleHit]) -> None:
        counts = {(h.chain, h.comment): h.packets for h in hits}
        with self.lock:
            self.latest = counts
            watched = list(self.tunnels.values())
            for attempt in watched:
                if attempt.since is None:
                    attempt.since, attempt.late = counts, attempt.started
                    attempt.began.set()
        told = []
        for attempt in watched:
            if attempt.since is counts:
                continue  # its baseline is this very reading
            during = _since(drops_for(hits, flows_of(attempt.ctx.tunnel)), attempt.since)
            if any(h.chain == "FORWARD" and h.packets >= MIN_DROPS for h in during):
                self.tell(attempt.ctx)
                told.append(attempt)
        with self.lock:
            for attempt in told:
                if self.tunnels.get(attempt.ctx.tunnel.id) is attempt:
                    del self.tunnels[attempt.ctx.tunnel.id]

    def tell(self, ctx: TunnelContext) -> None:
        try:  # the note is an argument, never part of the shell line
            self.lab.exec(ctx.tunnel.client, ["sh", "-c", 'printf "%s\\n" "$1" >"$2"', "sh", NOTE, ctx.blocked_path],
                          timeout=EVIDENCE_SECONDS)
        except Exception:  # noqa: BLE001 - the deadline still decides
            pass


_watchers: dict[tuple[int, str], _Watcher] = {}  # (lab, router node): a double NAT's two routers have one each
_registry = threading.Lock()


@contextmanager
def watched(lab: DockerLab, router: str, ctx: TunnelContext) -> Iterator[Attempt]:
    """While the tunnel's up-check runs, the lab's watcher may decide it down early. The attempt
    yielded holds the counters it began with (waited for a few seconds at most, so that the
    drops it is told of and quotes are its own)."""
    attempt = Attempt(ctx)
    watcher = _watch(lab, router, attempt)
    attempt.began.wait(FIRST_READING_SECONDS * ctx.environment.time_scale)
    with watcher.lock:
        attempt.started = True
    try:
        yield attempt
    finally:
        with _registry:
            if watcher.remove(attempt) and _watchers.get((id(lab), router)) is watcher:
                del _watchers[(id(lab), router)]


def _watch(lab: DockerLab, router: str, attempt: Attempt) -> _Watcher:
    """The lab's watcher, now watching ``attempt``."""
    while True:
        with _registry:
            watcher = _watchers.get((id(lab), router))
            if watcher is None or watcher.stop.is_set():
                scale = attempt.ctx.environment.time_scale
                watcher = _watchers[(id(lab), router)] = _Watcher(lab, router, POLL_SECONDS * scale)
        if watcher.add(attempt):
            return watcher
