"""L2TP: xl2tpd with pppd on both sides over plain UDP 1701.

(Being written: see the issue on PPTP, L2TP, L2TP/IPsec and IKEv2.)
"""

from __future__ import annotations

from lab.protocols.base import Flow, Protocol


class L2tp(Protocol):
    name = "l2tp"
    octet = 104
    deadline = 20.0
    flows = (Flow("udp", 1701),)
    family = "l2tp"
    interface_prefix = "l2tp"
    needs_ppp = True
