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

from lab.kernel import FEATURE_LABELS, KernelFeatures, ProtocolSupport, check_protocol
from lab.protocols.base import Environment
from lab.topology.model import Topology


LINK_CONDITIONS = "link conditions"  # the needs' key beside the protocols' names


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

    def link_missing(self, topology: Topology) -> list[str]:
        """What this kernel lacks for the topology's link conditions (delay/loss need netem).
        Missing only when the probe said no: an unknown answer lets the lab try."""
        if topology.uses_netem and self.features.available("netem") is False:
            return [FEATURE_LABELS["netem"]]
        return []

    def needs(self, topology: Topology) -> dict[str, list[str]]:
        """Per protocol of the topology, and for its link conditions, what this kernel lacks."""
        needs = self.missing(t.protocol for t in topology.tunnels)
        if topology.uses_netem:
            needs[LINK_CONDITIONS] = self.link_missing(topology)
        return needs

    def skips(self, topology: Topology) -> dict[int, str]:
        """Tunnels this kernel cannot run, by index, with the missing feature named. Link
        conditions this kernel cannot apply skip every tunnel: none would be judged on the
        links the topology describes."""
        link = [f"{m} for the link conditions (delay, loss)" for m in self.link_missing(topology)]
        skips = {}
        for i, t in enumerate(topology.tunnels):
            missing = (self.support(t.protocol).missing if self.support(t.protocol).runnable is False else []) + link
            if missing:
                skips[i] = f"kernel {self.release} lacks " + "; ".join(missing)
        return skips

    def notes(self, topology: Topology) -> dict[str, str]:
        """Per protocol: what this kernel lacks that is recommended (said in every result of it)."""
        notes = {}
        for protocol in sorted({t.protocol for t in topology.tunnels}):
            recommended = self.support(protocol).recommended_missing
            if recommended:
                notes[protocol] = "; ".join(f"kernel {self.release} lacks {m}" for m in recommended)
        return notes
