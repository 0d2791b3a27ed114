"""How a test tells that a "down" verdict came from the up-check itself (its deadline, the
client's daemon giving up before it, or the router's drop rule seen dropping its packets) rather
than from a long timeout, without timing it: the time depends on the machine's load (bench/
measures it)."""

from __future__ import annotations

import re

from lab.check.results import TunnelResult


def assert_decided_by_deadline(result: TunnelResult) -> None:
    """The reason names the deadline the up-check gave up at ("... within 20 s"), the client's
    daemon that gave up first ("pppd exited after 16.5 s, before a ping ... answered"), or the
    router's drop rule that decided it before the deadline (lab.check.blocked)."""
    early = r"router drop rule that matches every packet of their flow \(seen after [\d.]+ s, not waiting for the \d+ s"
    assert re.search(rf" within \d+ s\b| exited after [\d.]+ s, before a ping|{early}", result.reason), result.reason


def assert_decided_by_drops(result: TunnelResult) -> None:
    """The up-check ended before its deadline because the router's drop rule for its flow was
    seen dropping its packets; the rule and its count are in the reason."""
    assert "router drop rule that matches every packet of their flow (seen after" in result.reason, result.reason
    assert re.search(r"router rule '[^']+' \(FORWARD\) dropped \d+ packets", result.reason), result.reason
