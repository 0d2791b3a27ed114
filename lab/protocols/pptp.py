"""PPTP: pptpd on the server, pptp-linux with pppd on the client (TCP 1723 control, GRE data).

(Being written: see the issue on PPTP, L2TP, L2TP/IPsec and IKEv2.)
"""

from __future__ import annotations

from lab.protocols.base import Flow, Protocol


class Pptp(Protocol):
    name = "pptp"
    octet = 103
    deadline = 20.0
    flows = (Flow("tcp", 1723), Flow("gre"))
    family = "pptp"
    interface_prefix = "pptp"
    needs_ppp = True
