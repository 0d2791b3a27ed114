"""What the Docker engine's kernel can do for each VPN protocol.

- ``lab.kernel.features``: the feature names, labels and ``parse_probe`` (pure);
- ``lab.kernel.probe``: the probe script (lab/templates/kernel/probe.sh.j2) run in a throwaway
  container through the engine (``probe_engine_kernel``);
- ``lab.kernel.needs``: ``Alternative`` / ``Need``, with which a protocol class declares its needs;
- ``lab.kernel.support``: ``check_protocol`` turns features into a per-protocol verdict with
  the path it would take (e.g. wireguard-go when there is no kernel WireGuard), reading each
  protocol's needs from the protocol registry.
"""

from __future__ import annotations


from lab.kernel.features import FEATURE_LABELS, FEATURE_NAMES, Feature, KernelFeatures, parse_probe
from lab.kernel.needs import Alternative, Need
from lab.kernel.probe import PROBE_LABELS, PROBE_SCRIPT, PROBE_TIMEOUT_S, probe_engine_kernel
from lab.kernel.support import ProtocolSupport, check_protocol, protocol_recommended, protocol_requirements


__all__ = [
    "FEATURE_LABELS",
    "FEATURE_NAMES",
    "PROBE_LABELS",
    "PROBE_SCRIPT",
    "PROBE_TIMEOUT_S",
    "Alternative",
    "Feature",
    "KernelFeatures",
    "Need",
    "ProtocolSupport",
    "check_protocol",
    "parse_probe",
    "probe_engine_kernel",
    "protocol_recommended",
    "protocol_requirements",
]
