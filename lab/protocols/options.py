"""Per-tunnel ``options`` shared by several protocols: their ranges and their checks.

Each protocol's ``option_problems`` returns ``{option: message}``; the topology model places
each message at ``tunnels[i].options.<option>`` (exit 2). The checks here are the common ones:
whole numbers in a range (a YAML ``true`` or ``"2"`` is refused, not read as a number), and
options a protocol refuses with the reason.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from lab.protocols.base import Protocol

Options = dict[str, str | int | bool]

# A tunnel interface's MTU: IPv4's minimum datagram every host must take (576) to a jumbo
# frame (9000). Larger than the path's MTU is allowed: the outer packets are then fragmented,
# which is one of the things a lab may want to see.
MTU_RANGE = (576, 9000)


def number_problem(options: Options, key: str, what: str, bounds: tuple[int, int]) -> dict[str, str]:
    """``{key: message}`` when ``options[key]`` is set and is not a whole number in ``bounds``."""
    value = options.get(key)
    low, high = bounds
    # bool is an int in Python: 'keepalive: true' is refused, not read as 1
    if value is not None and (type(value) is not int or not low <= value <= high):
        return {key: f"must be {what}, a number {low}-{high}, not {json.dumps(value)}"}
    return {}


def mtu_problem(options: Options, what: str) -> dict[str, str]:
    return number_problem(options, "mtu", what, MTU_RANGE)


def unknown_options(options: Options, protocol: Protocol) -> dict[str, str]:
    """``{key: message}`` for each option the protocol does not take (a typo, another protocol's)."""
    takes = ", ".join(protocol.options) or "none"
    return {key: f"not an option of {protocol.name} (its options: {takes})" for key in options if key not in protocol.options}


def refused(options: Options, key: str, why: str) -> dict[str, str]:
    """``{key: why}`` when the tunnel sets ``key``, an option this protocol cannot honour."""
    return {key: why} if key in options else {}

