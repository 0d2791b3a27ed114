"""Per-protocol verdicts: can a protocol run on a probed kernel, by which path, what is missing.

The needs come from the protocol registry (each protocol class declares ``kernel_needs``
and ``kernel_recommended``); the registry is imported inside the functions because the
protocol modules import ``lab.kernel.needs``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lab.errors import PrerequisiteError
from lab.kernel.features import FEATURE_LABELS, KernelFeatures
from lab.kernel.needs import Alternative, Need


@dataclass
class ProtocolSupport:
    name: str
    runnable: bool | None  # None: nothing known missing, but something could not be determined
    via: str
    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    recommended_missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def protocol_requirements() -> dict[str, tuple[tuple[Alternative, ...], ...]]:
    """protocol -> needs, each a tuple of alternatives (the first available wins), from the registry."""
    from lab.protocols import PROTOCOLS

    return {name: tuple(need.alternatives for need in p.kernel_needs) for name, p in PROTOCOLS.items()}


def protocol_recommended() -> dict[str, dict[str, str]]:
    """protocol -> {feature: why}: not needed to come up, but a lab case depends on them."""
    from lab.protocols import PROTOCOLS

    return {name: dict(p.kernel_recommended) for name, p in PROTOCOLS.items() if p.kernel_recommended}


def _need_label(need: Need) -> str:
    alternatives = need.alternatives
    labels = [FEATURE_LABELS.get(a.feature, a.feature) for a in alternatives]
    if len(alternatives) > 1:
        return " or ".join(
            f"{lbl} for {a.via}" if i else lbl for i, (lbl, a) in enumerate(zip(labels, alternatives))
        )
    return labels[0]


def check_protocol(name: str, features: KernelFeatures) -> ProtocolSupport:
    """Can ``name`` run on this kernel, by which path, and what exactly is missing."""
    from lab.protocols import PROTOCOLS

    if name not in PROTOCOLS:
        raise PrerequisiteError(f"protocol {name}", "unknown", hint="known: " + ", ".join(sorted(PROTOCOLS)))
    protocol = PROTOCOLS[name]
    vias: list[str] = []
    missing: list[str] = []
    unknown: list[str] = []
    for need in protocol.kernel_needs:
        states = [features.available(a.feature) for a in need.alternatives]
        chosen = next((a for a, s in zip(need.alternatives, states) if s is True), None)
        if chosen is not None:
            if chosen.via not in vias:
                vias.append(chosen.via)
        elif any(s is None for s in states):
            unknown.append(_need_label(need))
        else:
            missing.append(_need_label(need))
    recommended = [
        f"{FEATURE_LABELS.get(f, f)}: {why}"
        for f, why in protocol.kernel_recommended
        if features.available(f) is not True
    ]
    runnable: bool | None = False if missing else (None if unknown else True)
    return ProtocolSupport(
        name=name,
        runnable=runnable,
        via=" + ".join(vias) if runnable else "",
        missing=missing,
        unknown=unknown,
        recommended_missing=recommended,
    )
