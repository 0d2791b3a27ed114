"""The result of a matrix run: one Cell per (profile, protocol), the profiles with their NAT behaviour, timings.

The runner fills a MatrixResult; every output (terminal, Markdown, HTML, JUnit, JSON)
reads only this model. ``to_dict``/``from_dict`` are the JSON shape (``FORMAT``), and
``load`` turns a bad file into one MatrixFileError naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from lab import __version__
from lab.errors import VpnlabError
from lab.check.results import TunnelResult

FORMAT = "vpnlab-matrix/1"  # in every JSON, so a `vpnlab run` result is told apart from a matrix
EXPECT = ("up", "down")
PHASES = ("images", "guest_boot", "up", "check", "down", "total")

# RFC 5780 behaviours, shortened for the matrix's NAT row.
MAPPING_SHORT = {"endpoint-independent": "EIM", "address-dependent": "ADM", "address-and-port-dependent": "APDM"}
FILTERING_SHORT = {"endpoint-independent": "EIF", "address-dependent": "ADF", "address-and-port-dependent": "APDF"}
NAT_LEGEND = (
    "NAT (RFC 5780) mapping/filtering: EIM/EIF endpoint-independent, ADM/ADF address-dependent, "
    "APDM/APDF address-and-port-dependent; 'no NAT' the router routes without translating"
)


class MatrixFileError(VpnlabError):
    """A matrix result file that cannot be read: missing, not JSON, or not the matrix shape."""

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}", hint="give the JSON files that 'vpnlab matrix --json' wrote")


class MergeError(VpnlabError):
    """Shard results that contradict each other."""


@dataclass
class NatBehaviour:
    mapping: str  # a MAPPING_SHORT key, 'none' (routed, no translation) or 'unknown'
    filtering: str  # a FILTERING_SHORT key, 'none' or 'unknown'
    summary: str  # e.g. "endpoint-independent mapping, address-and-port-dependent filtering"
    evidence: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        filtering = FILTERING_SHORT.get(self.filtering, "?")
        if self.mapping == "none":
            return "no NAT" if self.filtering == "none" else f"no NAT, {filtering}"
        return f"{MAPPING_SHORT.get(self.mapping, '?')}/{filtering}"


@dataclass
class Cell:
    """One protocol through one profile: a `vpnlab run` tunnel result plus where it stands in the matrix."""

    profile: str
    client: str
    server: str
    protocol: str
    expect: str  # 'up' | 'down'
    observed: str  # one of lab.check.results.OBSERVED
    reason: str
    seconds: float
    evidence: dict[str, Any] = field(default_factory=dict)
    expected_reason: str = ""  # the profile's documented reason for a down cell

    @classmethod
    def from_tunnel(cls, profile: str, tunnel: TunnelResult, expected_reason: str = "") -> Cell:
        return cls(profile, tunnel.client, tunnel.server, tunnel.protocol, tunnel.expect, tunnel.observed,
                   tunnel.reason, tunnel.seconds, tunnel.evidence, expected_reason)

    @property
    def key(self) -> tuple[str, str]:
        return (self.profile, self.protocol)

    @property
    def anchor(self) -> str:
        """A fragment id for links from the grid to this cell's evidence."""
        return f"cell-{self.profile}-{self.protocol}"

    @property
    def passed(self) -> bool:
        return self.observed == self.expect

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class ProfileInfo:
    name: str
    description: str
    source: str  # 'builtin' or the YAML file's path
    router: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, str] = field(default_factory=dict)  # protocol -> 'up' | 'down'
    reasons: dict[str, str] = field(default_factory=dict)  # protocol -> why it is down
    nat: NatBehaviour | None = None


@dataclass
class LabNode:
    name: str
    address: str
    protocols: list[str] = field(default_factory=list)  # what a server serves; empty for clients


@dataclass
class LabLayout:
    """Enough of the lab to draw it: clients on the LAN, the router, servers on the WAN."""

    lan: str
    wan: str
    router: str
    router_lan: str
    router_wan: str
    clients: list[LabNode] = field(default_factory=list)
    servers: list[LabNode] = field(default_factory=list)


@dataclass
class MatrixResult:
    runtime: str
    runtime_reason: str
    kernel: str
    started: str  # ISO 8601
    profiles: list[ProfileInfo]
    protocols: list[str]
    lab: LabLayout
    cells: list[Cell]
    seconds: dict[str, float] = field(default_factory=dict)  # phase (PHASES) -> seconds
    shard: str | None = None  # 'K/N' for one shard, None for the whole matrix
    shard_seconds: dict[str, float] = field(default_factory=dict)  # after a merge: 'K/N' -> that shard's total
    version: str = __version__

    @property
    def missing(self) -> list[tuple[str, str]]:
        """(profile, protocol) pairs of the matrix without a cell (a shard not merged in).

        One shard's own run ('K/N', no shard_seconds: not a merge) misses only cells of its share:
        the rest are other shards'. A merge (shard_seconds filled) misses every cell no shard brought.
        """
        have = {c.key for c in self.cells}
        pairs = [(p.name, proto) for p in self.profiles for proto in self.protocols]
        if self.shard and "+" not in self.shard and not self.shard_seconds:
            share = set(shard_cells(pairs, *parse_shard(self.shard)))
            pairs = [pair for pair in pairs if pair in share]
        return [pair for pair in pairs if pair not in have]

    @property
    def mismatches(self) -> list[Cell]:
        """Cells that came out other than expected (an error too); skipped cells are listed apart."""
        return [c for c in self.cells if not c.passed and c.observed != "skipped"]

    @property
    def skipped(self) -> list[Cell]:
        return [c for c in self.cells if c.observed == "skipped"]

    @property
    def passed(self) -> bool:
        """Every cell ran and equals its expectation; a skipped or missing cell is not a pass."""
        return bool(self.cells) and all(c.passed for c in self.cells) and not self.missing

    def cell(self, profile: str, protocol: str) -> Cell | None:
        for c in self.cells:
            if c.profile == profile and c.protocol == protocol:
                return c
        return None

    def profile(self, name: str) -> ProfileInfo | None:
        return next((p for p in self.profiles if p.name == name), None)

    def summary(self) -> dict[str, int]:
        return {
            "cells": len(self.cells),
            "as_expected": sum(c.passed for c in self.cells),
            "mismatched": len(self.mismatches),
            "skipped": len(self.skipped),
            "missing": len(self.missing),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "runtime": self.runtime,
            "runtime_reason": self.runtime_reason,
            "kernel": self.kernel,
            "shard": self.shard,
            "started": self.started,
            "passed": self.passed,
            "summary": self.summary(),
            "seconds": self.seconds,
            "shard_seconds": self.shard_seconds,
            "protocols": list(self.protocols),
            "profiles": [asdict(p) for p in self.profiles],
            "lab": asdict(self.lab),
            "cells": [c.to_dict() for c in self.cells],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "matrix result") -> MatrixResult:
        """The inverse of to_dict; a dict of another shape raises MatrixFileError naming source and field."""
        from lab.matrix.reading import result_from_dict

        return result_from_dict(data, source)


class ShardError(VpnlabError):
    """A shard that is not 'K/N' with 1 <= K <= N."""


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3)."""
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit()) or not 1 <= int(k) <= int(n):
        raise ShardError(f"shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/3")
    return int(k), int(n)


def shard_cells(pairs: Iterable[tuple[str, str]], k: int, n: int) -> list[tuple[str, str]]:
    """The K-th of N shards (K from 1) of the (profile, protocol) pairs: every N-th pair in sorted order.

    Sorting first makes the choice the same on every CI job whatever order the pairs came in;
    round-robin spreads each profile's slow and fast protocols over the shards.
    """
    if not 1 <= k <= n:
        raise ShardError(f"shard {k}/{n}: expected 1 <= K <= N")
    return [pair for index, pair in enumerate(sorted(set(pairs))) if index % n == k - 1]
