"""Conntrack helpers the router can attach, and the flows each passthrough switch covers.

Since Linux 4.7 a helper only acts on a flow that a rule attaches it to
(``-j CT --helper NAME`` in the raw table); the automatic assignment sysctl
is gone (removed in 6.0), so these rules are the only switch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HelperFlow:
    kernel_name: str  # the name CT --helper takes
    proto: str
    port: int


@dataclass(frozen=True)
class Helper:
    flows: tuple[HelperFlow, ...]
    # kernel modules a User-Mode Linux guest loads at boot for it (nf_nat_pptp is never
    # loaded on demand); the others are loaded on demand by the CT rule
    modules: tuple[str, ...] = ()


# The CT target every helper rule uses.
HELPER_RULE_MODULES = ("xt_CT",)

HELPERS: dict[str, Helper] = {
    "pptp": Helper((HelperFlow("pptp", "tcp", 1723),), ("nf_conntrack_pptp", "nf_nat_pptp")),
    "ftp": Helper((HelperFlow("ftp", "tcp", 21),)),
    "tftp": Helper((HelperFlow("tftp", "udp", 69),)),
    "sip": Helper((HelperFlow("sip", "udp", 5060),)),
    "irc": Helper((HelperFlow("irc", "tcp", 6667),)),
    "h323": Helper((HelperFlow("RAS", "udp", 1719), HelperFlow("Q.931", "tcp", 1720))),
    "amanda": Helper((HelperFlow("amanda", "udp", 10080),)),
    "netbios-ns": Helper((HelperFlow("netbios-ns", "udp", 137),)),
    "snmp": Helper((HelperFlow("snmp", "udp", 161),)),
    "sane": Helper((HelperFlow("sane", "tcp", 6566),)),
}


def helper_modules() -> list[str]:
    """Every module the router's helpers need, in a stable order."""
    modules = [*HELPER_RULE_MODULES, *(m for helper in HELPERS.values() for m in helper.modules)]
    return list(dict.fromkeys(modules))


def passthrough_flows() -> dict[str, list[tuple[str, int | None]]]:
    """(proto, port) pairs each passthrough switch forwards (port None = the whole IP protocol):
    each family's flows are the union of the flows of its protocols, in registry order."""
    from lab.protocols import PROTOCOLS  # the protocols import lab.router.comments

    families: dict[str, list[tuple[str, int | None]]] = {}
    for protocol in PROTOCOLS.values():
        if protocol.family is None:
            continue
        flows = families.setdefault(protocol.family, [])
        for flow in protocol.flows:
            if (flow.proto, flow.port) not in flows:
                flows.append((flow.proto, flow.port))
    return families


CONNTRACK_SYSCTLS: dict[str, str] = {
    "udp_timeout": "net.netfilter.nf_conntrack_udp_timeout",
    "udp_stream_timeout": "net.netfilter.nf_conntrack_udp_timeout_stream",
    "tcp_timeout_established": "net.netfilter.nf_conntrack_tcp_timeout_established",
    "gre_timeout": "net.netfilter.nf_conntrack_gre_timeout",
    "gre_stream_timeout": "net.netfilter.nf_conntrack_gre_timeout_stream",
}
