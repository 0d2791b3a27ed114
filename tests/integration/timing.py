"""How far past its deadline a "down" verdict may come: the up-check polls (link, route, ping),
and the poll under way when the deadline passes finishes first. In the one-CPU User-Mode Linux
guest each of a poll's processes costs a fraction of a second under load (seen: 2.8 s late)."""

from __future__ import annotations

from lab.pytest_plugin import RunningLab


def last_poll(lab: RunningLab) -> float:
    """Seconds the last poll may add to the deadline on the lab's runtime."""
    return 4.0 if lab.runtime == "uml" else 1.5
