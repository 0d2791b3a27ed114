"""How a test tells that a "down" verdict came from the up-check's own deadline rather than from a
daemon's long timeout, without timing it (the time depends on the machine's load; bench/ measures it)."""

from __future__ import annotations

import re

from lab.check.results import TunnelResult


def assert_decided_by_deadline(result: TunnelResult) -> None:
    """The reason names the deadline the up-check gave up at ("... within 20 s")."""
    assert re.search(r" within \d+ s\b", result.reason), result.reason
