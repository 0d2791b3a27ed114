"""The kernel features the probe reports, how a person looks for each, and the parsed result.

Free of protocol imports: protocols declare their needs with these names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FEATURE_NAMES = (
    "tun", "ppp", "l2tp", "pptp", "xfrm", "esp", "wireguard",
    "pptp_helper", "nf_nat_pptp", "conntrack_sysctl", "netem",
)

# How a person looks for each feature (module / config / device node).
FEATURE_LABELS = {
    "tun": "TUN (tun, /dev/net/tun)",
    "ppp": "PPP (ppp_generic, /dev/ppp)",
    "l2tp": "L2TP (l2tp_ppp)",
    "pptp": "PPTP kernel driver (pptp)",
    "xfrm": "XFRM netlink (xfrm_user)",
    "esp": "ESP (esp4)",
    "wireguard": "WireGuard (wireguard)",
    "pptp_helper": "PPTP conntrack helper (nf_conntrack_pptp, xt_CT)",
    "nf_nat_pptp": "PPTP NAT helper (nf_nat_pptp)",
    "conntrack_sysctl": "conntrack sysctls (nf_conntrack)",
    "netem": "netem (sch_netem)",
}


@dataclass(frozen=True)
class Feature:
    name: str
    available: bool | None  # None = could not tell
    detail: str = ""


@dataclass
class KernelFeatures:
    release: str
    features: dict[str, Feature]
    complete: bool = True  # False when the probe output ended early
    tools: str = ""

    def available(self, name: str) -> bool | None:
        f = self.features.get(name)
        return f.available if f else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "complete": self.complete,
            "tools": self.tools,
            "features": {k: asdict(v) for k, v in self.features.items()},
        }


_STATUS = {"yes": True, "no": False, "unknown": None}


def parse_probe(text: str) -> KernelFeatures:
    """Parse the probe's output. Features it did not report come back unknown."""
    release, tools, complete = "", "", False
    features: dict[str, Feature] = {}
    for line in text.splitlines():
        name, sep, rest = line.strip().partition("=")
        if not sep or not name.replace("_", "").isalnum():
            continue
        status, _, detail = rest.partition(" ")
        if status not in _STATUS:
            continue
        detail = detail.strip()
        if name == "release":
            release = detail.split(" ")[0] if detail else ""
        elif name == "tools":
            tools = detail
        elif name == "end":
            complete = True
        else:
            features[name] = Feature(name, _STATUS[status], detail)
    for name in FEATURE_NAMES:
        features.setdefault(name, Feature(name, None, "not reported by the probe"))
    return KernelFeatures(release=release, features=features, complete=complete, tools=tools)
