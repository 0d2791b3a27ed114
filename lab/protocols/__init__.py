"""The protocol registry: a plain name -> module-object dict.

Adding a protocol means one module here and one line below.
"""

from __future__ import annotations

from lab.protocols.base import Flow, NodeFile, Protocol, ServerContext, TunnelContext
from lab.protocols.ikev2 import Ikev2
from lab.protocols.l2tp import L2tp
from lab.protocols.l2tp_ipsec import L2tpIpsec
from lab.protocols.openvpn import OpenVpnTcp, OpenVpnUdp
from lab.protocols.pptp import Pptp
from lab.protocols.wireguard import WireGuard

PROTOCOLS: dict[str, Protocol] = {
    p.name: p for p in (WireGuard(), OpenVpnUdp(), OpenVpnTcp(), Pptp(), L2tp(), L2tpIpsec(), Ikev2())
}

__all__ = ["PROTOCOLS", "Flow", "NodeFile", "Protocol", "ServerContext", "TunnelContext"]
