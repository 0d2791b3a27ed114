"""Link conditions: what a node's link to its segment is like (containerlab and netlab call
these link parameters): its MTU, and the delay and loss netem adds to what the node sends.

Written on the node that owns the link end (``link:`` on a client or a server, ``links:
{lan, wan}`` on the router)::

    clients:
      - name: alice
        link: {mtu: 1400, delay: 50ms, loss: 1%}

Every value is parsed into a number here, checked against a range, and rendered back from
that number (``netem_args``): nothing a topology writes reaches a shell line as text.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

MTU_MIN, MTU_MAX = 576, 9000  # 576: the smallest datagram every IPv4 host must accept (RFC 791)
DELAY_MAX_US = 10_000_000  # 10 s: more is a dead link, which `block:` says better
DELAY_RE = re.compile(r"(\d{1,8}(?:\.\d{1,3})?) ?(us|ms|s)")  # always fullmatch
LOSS_RE = re.compile(r"(\d{1,3}(?:\.\d{1,3})?) ?%")  # always fullmatch
DELAY_RULE = "a number with a unit: us, ms or s (for example 50ms), up to 10s"
LOSS_RULE = "a percentage above 0 and at most 100 (for example 1% or 0.5%)"
UNIT_US = {"us": 1, "ms": 1000, "s": 1_000_000}


def _shown(value: object) -> str:
    from lab.topology.model import quoted  # model imports this module

    return quoted(value)


def delay_microseconds(value: object) -> int:
    """'50ms' -> 50000; ValueError naming the rule for anything else (a bare number has no unit)."""
    match = DELAY_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"delay '{_shown(value)}' is not {DELAY_RULE}")
    micros = Decimal(match.group(1)) * UNIT_US[match.group(2)]
    if micros != micros.to_integral_value() or not 0 < micros <= DELAY_MAX_US:
        raise ValueError(f"delay '{_shown(value)}' is out of range: {DELAY_RULE}, in whole microseconds")
    return int(micros)


def loss_percent(value: object) -> Decimal:
    """'1%' -> Decimal('1'); ValueError naming the rule otherwise (a bare number could be a fraction)."""
    match = LOSS_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"loss '{_shown(value)}' is not {LOSS_RULE}")
    try:
        percent = Decimal(match.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"loss '{_shown(value)}' is not {LOSS_RULE}") from exc
    if not 0 < percent <= 100:
        raise ValueError(f"loss '{_shown(value)}' is out of range: {LOSS_RULE}")
    return percent


def delay_text(micros: int) -> str:
    """How tc and a topology write a delay: the largest unit that keeps it whole."""
    for unit in ("s", "ms"):
        if micros % UNIT_US[unit] == 0:
            return f"{micros // UNIT_US[unit]}{unit}"
    return f"{micros}us"


class LinkConditions(BaseModel):
    """One link end's conditions; each None when the topology leaves it as Docker's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mtu: int | None = Field(default=None, ge=MTU_MIN, le=MTU_MAX, strict=True)
    delay: int | None = None  # microseconds, parsed from "50ms"
    loss: Decimal | None = None  # percent, parsed from "1%"

    @field_validator("delay", mode="before")
    @classmethod
    def parse_delay(cls, value: object) -> int | None:
        return None if value is None else delay_microseconds(value)

    @field_validator("loss", mode="before")
    @classmethod
    def parse_loss(cls, value: object) -> Decimal | None:
        return None if value is None else loss_percent(value)

    @field_serializer("delay")
    def written_delay(self, delay: int | None) -> str | None:
        return None if delay is None else delay_text(delay)  # read back by parse_delay

    @field_serializer("loss")
    def written_loss(self, loss: Decimal | None) -> str | None:
        return None if loss is None else f"{loss.normalize():f}%"

    @property
    def uses_netem(self) -> bool:
        return self.delay is not None or self.loss is not None

    def netem_args(self) -> str:
        """The arguments after ``tc qdisc add dev IF root netem`` ("" when none)."""
        parts = []
        if self.delay is not None:
            parts.append(f"delay {delay_text(self.delay)}")
        if self.loss is not None:
            parts.append(f"loss {self.loss.normalize():f}%")
        return " ".join(parts)


class RouterLinks(BaseModel):
    """The router's two link ends: ``lan`` (lan0) and ``wan`` (wan0, the uplink: a DSL line's 1492)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lan: LinkConditions = Field(default_factory=LinkConditions)
    wan: LinkConditions = Field(default_factory=LinkConditions)
