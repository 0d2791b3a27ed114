"""How a test tells that a "down" verdict came from the up-check itself (its deadline, or the
client's daemon giving up before it) rather than from a long timeout, without timing it: the time
depends on the machine's load (bench/ measures it)."""

from __future__ import annotations

import re

from lab.check.results import TunnelResult


def assert_decided_by_deadline(result: TunnelResult) -> None:
    """The reason names the deadline the up-check gave up at ("... within 20 s"), or the client's
    daemon that gave up first ("pppd exited after 16.5 s, before a ping ... answered")."""
    assert re.search(r" within \d+ s\b| exited after [\d.]+ s, before a ping", result.reason), result.reason
