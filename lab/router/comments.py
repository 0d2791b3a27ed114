"""The comments vpnlab's router rules carry in iptables: written once here, used by the
ruleset template, the router plan and the diagnosis that reads the rules' counters."""

from __future__ import annotations

COMMENT_PREFIX = "vpnlab:"
# INPUT: GRE addressed to the router itself, i.e. not tied to a PPTP call by the helper
INPUT_GRE_NOT_TIED = f"{COMMENT_PREFIX} input gre from wan not tied to a call"
# INPUT: the rest of what comes from the WAN unasked (a router's wan zone input REJECT)
INPUT_UNSOLICITED = f"{COMMENT_PREFIX} input unsolicited from wan"
INPUT_DROPS = (INPUT_GRE_NOT_TIED, INPUT_UNSOLICITED)
# FORWARD: what no rule accepted (new traffic from the WAN, e.g. a server's GRE that a
# router without the pptp helper cannot match to the client's call)
FORWARD_DEFAULT_DROP = f"{COMMENT_PREFIX} forward default drop"
NAT_MASQUERADE = f"{COMMENT_PREFIX} nat masquerade"
NAT_MASQUERADE_RANDOM_FULLY = f"{COMMENT_PREFIX} nat masquerade random-fully"
# FORWARD, router.allow_out set: the catch-all drop of LAN -> WAN traffic not allowed out
STRICT_NOT_ALLOWED = f"{COMMENT_PREFIX} strict: not allowed out"
_PASSTHROUGH = f"{COMMENT_PREFIX} passthrough "
_BLOCK = f"{COMMENT_PREFIX} block "
_STRICT_FLOW = f"{STRICT_NOT_ALLOWED} ("


def passthrough_off(family: str, flow_label: str) -> str:
    """The FORWARD drop of one flow of a passthrough family switched off."""
    return f"{_PASSTHROUGH}{family} off ({flow_label})"


def block(label: str) -> str:
    """The FORWARD drop of a topology's ``router.block`` entry."""
    return f"{_BLOCK}{label}"


def block_own(label: str) -> str:
    """The OUTPUT drop of a ``router.block`` ICMP type: the ones the router sends itself (its
    own "fragmentation needed" when a packet is larger than its WAN link's MTU)."""
    return f"{_BLOCK}{label} sent by the router"


def strict_allowed(label: str) -> str:
    """The FORWARD accept of one ``router.allow_out`` entry."""
    return f"{COMMENT_PREFIX} strict: allowed out {label}"


def strict_not_allowed(flow_label: str) -> str:
    """The FORWARD drop, under ``router.allow_out``, of one known VPN flow not allowed out
    (a rule of its own so that its counter says which tunnel's traffic it dropped)."""
    return f"{_STRICT_FLOW}{flow_label})"


def is_flow_drop(comment: str) -> bool:
    """A passthrough, block or strict drop: the rules whose comment names the flows they drop."""
    return comment.startswith((_PASSTHROUGH, _BLOCK, _STRICT_FLOW))
