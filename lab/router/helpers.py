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


HELPERS: dict[str, list[HelperFlow]] = {
    "pptp": [HelperFlow("pptp", "tcp", 1723)],
    "ftp": [HelperFlow("ftp", "tcp", 21)],
    "tftp": [HelperFlow("tftp", "udp", 69)],
    "sip": [HelperFlow("sip", "udp", 5060)],
    "irc": [HelperFlow("irc", "tcp", 6667)],
    "h323": [HelperFlow("RAS", "udp", 1719), HelperFlow("Q.931", "tcp", 1720)],
    "amanda": [HelperFlow("amanda", "udp", 10080)],
    "netbios-ns": [HelperFlow("netbios-ns", "udp", 137)],
    "snmp": [HelperFlow("snmp", "udp", 161)],
    "sane": [HelperFlow("sane", "tcp", 6566)],
}

# (proto, port) pairs each passthrough switch forwards; port None = the whole IP protocol.
PASSTHROUGH_FLOWS: dict[str, list[tuple[str, int | None]]] = {
    "pptp": [("tcp", 1723), ("gre", None)],
    "l2tp": [("udp", 1701)],
    "ipsec": [("udp", 500), ("udp", 4500), ("esp", None)],
}

CONNTRACK_SYSCTLS: dict[str, str] = {
    "udp_timeout": "net.netfilter.nf_conntrack_udp_timeout",
    "udp_stream_timeout": "net.netfilter.nf_conntrack_udp_timeout_stream",
    "tcp_timeout_established": "net.netfilter.nf_conntrack_tcp_timeout_established",
    "gre_timeout": "net.netfilter.nf_conntrack_gre_timeout",
    "gre_stream_timeout": "net.netfilter.nf_conntrack_gre_timeout_stream",
}
