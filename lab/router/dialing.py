"""The router as a VPN client: tunnels whose ``client`` is ``router`` (issue 11, scenario 2).

A DD-WRT or OpenWrt router can dial a PPTP server itself (OpenWrt's ``proto pptp``). Its
connection is then *local* traffic: it leaves through the raw table's OUTPUT chain, not
PREROUTING, so a helper attached for forwarded traffic only never sees it, and the server's
GRE meets the router's INPUT chain as new traffic from the WAN (OpenWrt's firewall bug:
openwrt/openwrt#13009, #11101). ``router.helpers_for`` chooses where the helpers go.

What the router runs is what a LAN client runs for the same protocol (the protocol module's
client files and up-check, in the router's container): only the protocols below, whose
router-side diagnosis is written, may be dialled by the router.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.node_files import LOG_DIR

if TYPE_CHECKING:  # pragma: no cover
    from lab.topology.model import Topology, Tunnel

ROUTER_CLIENT = "router"  # a tunnel's client when the router dials (the router node's name)
# Protocols the router may dial: PPTP is what consumer routers offer as their own client and the
# one whose helper placement matters (the router image has pptp-linux and pppd, as every node).
DIALING_PROTOCOLS = ("pptp",)
# pptp-linux logs only to syslog: a router that dials keeps a syslogd, as the other nodes do
# (lab/templates/common/setup.sh.j2 starts it for every node but the router)
SYSLOGD = f"busybox syslogd -O {LOG_DIR}/syslog </dev/null >/dev/null 2>&1"


def router_tunnels(topology: Topology) -> list[Tunnel]:
    """The tunnels the router dials itself, in topology order."""
    return [t for t in topology.tunnels if t.client == ROUTER_CLIENT]


def dials_out(topology: Topology) -> bool:
    return bool(router_tunnels(topology))


def dialing_problem(protocol: str) -> str | None:
    """Why the router cannot dial ``protocol`` (None: it can)."""
    if protocol in DIALING_PROTOCOLS:
        return None
    return (f"the router itself dials only {', '.join(DIALING_PROTOCOLS)}, not '{protocol}' "
            "(give this tunnel a client from clients:)")
