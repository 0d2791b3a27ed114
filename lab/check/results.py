"""Results of a run: one TunnelResult per tunnel, gathered in a RunResult (the JSON shape)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from lab import __version__

if TYPE_CHECKING:  # pragma: no cover
    from lab.matrix.result import NatBehaviour  # which imports this module
    from lab.steps.results import StepResult

OBSERVED = ("up", "down", "skipped", "error")


@dataclass
class TunnelResult:
    client: str
    server: str
    protocol: str
    expect: str
    observed: str  # one of OBSERVED
    reason: str
    seconds: float
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.client}-{self.protocol}-{self.server}"

    @property
    def passed(self) -> bool:
        return self.observed == self.expect

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class RunResult:
    name: str
    runtime: str
    runtime_reason: str
    kernel: str
    tunnels: list[TunnelResult]
    seconds: dict[str, float] = field(default_factory=dict)
    nat: NatBehaviour | None = None  # measured when the topology says nat_probe: true
    teardown: str | None = None  # what removing the lab left behind, and why
    steps: list[StepResult] | None = None  # the topology's steps, when it has any

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tunnels) and all(s.passed for s in self.steps or [])

    def to_dict(self) -> dict[str, Any]:
        nat = {"nat": asdict(self.nat)} if self.nat is not None else {}
        left = {"teardown": self.teardown} if self.teardown is not None else {}
        steps = {"steps": [s.to_dict() for s in self.steps]} if self.steps is not None else {}
        return {
            "version": __version__,  # of vpnlab, so a stored result says what produced it
            "name": self.name,
            "runtime": self.runtime,
            "runtime_reason": self.runtime_reason,
            "kernel": self.kernel,
            "passed": self.passed,
            "seconds": self.seconds,
            "tunnels": [t.to_dict() for t in self.tunnels],
            **nat,
            **steps,
            **left,
        }
