"""The comments vpnlab's router rules carry in iptables: written once here, used by the
ruleset template, the router plan and the diagnosis that reads the rules' counters."""

from __future__ import annotations

COMMENT_PREFIX = "vpnlab:"
# INPUT: GRE addressed to the router itself, i.e. not tied to a PPTP call by the helper
INPUT_GRE_NOT_TIED = f"{COMMENT_PREFIX} input gre from wan not tied to a call"
_PASSTHROUGH = f"{COMMENT_PREFIX} passthrough "
_BLOCK = f"{COMMENT_PREFIX} block "


def passthrough_off(family: str, flow_label: str) -> str:
    """The FORWARD drop of one flow of a passthrough family switched off."""
    return f"{_PASSTHROUGH}{family} off ({flow_label})"


def block(label: str) -> str:
    """The FORWARD drop of a topology's ``router.block`` entry."""
    return f"{_BLOCK}{label}"


def is_flow_drop(comment: str) -> bool:
    """A passthrough or block drop: the rules whose comment names the flows they drop."""
    return comment.startswith((_PASSTHROUGH, _BLOCK))
