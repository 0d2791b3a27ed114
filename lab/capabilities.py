"""What one engine's kernel offers, and what that means for each protocol: one pure value.

A ``Capabilities`` is made from a kernel probe (``lab.kernel``) once per engine and
answers every question the rest of vpnlab asks of a kernel: can this protocol
run here and by which path, which tunnels must be skipped and why, what is
recommended but missing, and which environment the configs must adapt to
(kernel PPP, ESP, WireGuard). No Docker here: unit tests build one from probe
text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lab.kernel import KernelFeatures, ProtocolSupport, check_protocol
from lab.protocols.base import Environment
from lab.topology.model import Topology


@dataclass(frozen=True)
class Capabilities:
    features: KernelFeatures
    _support: dict[str, ProtocolSupport] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def release(self) -> str:
        return self.features.release

    def support(self, protocol: str) -> ProtocolSupport:
        """Whether ``protocol`` runs on this kernel, by which path, and what is missing."""
        if protocol not in self._support:
            self._support[protocol] = check_protocol(protocol, self.features)
        return self._support[protocol]

    @property
    def environment(self) -> Environment:
        """What configs must adapt to: kernel PPP, kernel ESP, kernel WireGuard."""
        return Environment(
            ppp=self.features.available("ppp") is True,
            esp=self.features.available("esp") is True,
            wireguard=self.features.available("wireguard") is True,
        )

    def missing(self, protocols: Iterable[str]) -> dict[str, list[str]]:
        """Per protocol, the features it needs that this kernel lacks (empty list: none)."""
        return {p: self.support(p).missing for p in sorted(set(protocols))}

    def skips(self, topology: Topology) -> dict[int, str]:
        """Tunnels this kernel cannot run, by index, with the missing feature named."""
        return {
            i: f"kernel {self.release} lacks " + "; ".join(self.support(t.protocol).missing)
            for i, t in enumerate(topology.tunnels)
            if self.support(t.protocol).runnable is False
        }

    def notes(self, topology: Topology) -> dict[str, str]:
        """Per protocol: what this kernel lacks that is recommended (said in every result of it)."""
        notes = {}
        for protocol in sorted({t.protocol for t in topology.tunnels}):
            recommended = self.support(protocol).recommended_missing
            if recommended:
                notes[protocol] = "; ".join(f"kernel {self.release} lacks {m}" for m in recommended)
        return notes
