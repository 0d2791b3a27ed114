"""How a protocol declares what it needs from the kernel (data on its class, read by
``lab.kernel.support``). No protocol imports here: ``lab.protocols.base`` imports this."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alternative:
    feature: str  # a name from lab.kernel.features.FEATURE_NAMES
    via: str  # how the protocol runs when this alternative is the one available


@dataclass(frozen=True, init=False)
class Need:
    """One thing the protocol cannot do without: the first available alternative wins."""

    alternatives: tuple[Alternative, ...]

    def __init__(self, *alternatives: Alternative) -> None:
        if not alternatives:
            raise ValueError("a Need takes at least one Alternative")
        object.__setattr__(self, "alternatives", alternatives)
