"""Printing text vpnlab did not write (daemon logs, reasons, paths, an engine's answers) through Rich.

Rich reads ``[...]`` as markup: a reason quoting ``[/x]`` from a daemon's log raised MarkupError
and lost the output, ``[bold]`` restyled it. And a log's terminal escape codes would recolour the
user's terminal. ``shown`` makes such text print exactly as it reads.
"""

from __future__ import annotations

import re

from rich.markup import escape

# C0 controls but tab and newline, and DEL: spelled out (\x1b) rather than sent to the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def shown(text: object) -> str:
    """``text`` as Rich markup that prints it literally."""
    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text)))
