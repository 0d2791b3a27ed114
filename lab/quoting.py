"""How an error message quotes a value from a topology file: short, on one line, never a
whole collection (lab.topology.model and everything that words a located error use it)."""

from __future__ import annotations

SHOWN_CHARS = 40  # a value quoted in a message is cut here: a message stays one readable line


def quoted(value: object) -> str:
    """A value as a message quotes it, cut short: a 1 MB name would make a 1 MB error, and
    a collection (perhaps an alias bomb) is named, never printed."""
    if isinstance(value, (list, dict, set, tuple)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    if isinstance(value, int) and abs(value) >= 10**SHOWN_CHARS:  # str() fails past 4300 digits
        return "a number of more than 40 digits"
    text = value if isinstance(value, str) else str(value)
    text = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)  # one line, control characters seen
