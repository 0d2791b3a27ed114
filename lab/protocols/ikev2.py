"""IKEv2: strongSwan (swanctl) with certificates made per lab and a virtual IP for the client.

(Being written: see the issue on PPTP, L2TP, L2TP/IPsec and IKEv2.)
"""

from __future__ import annotations

from lab.protocols.base import Flow, Protocol


class Ikev2(Protocol):
    name = "ikev2"
    octet = 106
    deadline = 15.0
    flows = (Flow("udp", 500), Flow("udp", 4500), Flow("esp"))
    family = "ipsec"
    interface_prefix = "ike"
