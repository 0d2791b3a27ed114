"""The shell that re-probes a tunnel already up, without restarting it, in either direction.

From the client: ping the server's tunnel address through the tunnel, as the up-check does,
until it answers or the probe's deadline passes. From the server: ping the address the client
holds on its tunnel now (read on the client first: OpenVPN and PPP hand addresses out from a
pool, IKEv2 a virtual IP), from the server's own tunnel address. Each prints the up-check's
one line, ``vpnlab-result up|down MILLISECONDS DETAIL``, so ``lab.check.explain.parse_result``
reads both.
"""

from __future__ import annotations

import ipaddress

from lab.protocols import PROTOCOLS
from lab.protocols.base import TunnelContext

PROBE_SECONDS = 5.0  # a re-probe's deadline, unless the tunnel's own is shorter


def probe_seconds(ctx: TunnelContext) -> float:
    return min(PROTOCOLS[ctx.tunnel.protocol].deadline_for(ctx), PROBE_SECONDS)


def _loop(ping: str, what: str, seconds: float, before: str = "") -> str:
    """Ping once a second until an answer or ``seconds``; one vpnlab-result line."""
    return (
        # the clock as the up-check reads it (check-tunnel.sh.j2): /proc/uptime, no process started
        "clock() { read -r up _ </proc/uptime; now=$(( ${up%.*}${up#*.} * 10 )); }; clock; start=$now; "
        # each ping waits 1 s for its answer: the last one starts a second before the deadline
        f"while clock; [ $(( now - start + 1000 )) -le {int(seconds * 1000)} ]; do "
        f"{before}"
        f"if {ping} >/dev/null 2>&1; then clock; echo \"vpnlab-result up $(( now - start )) {what} answered\"; exit 0; fi; "
        "sleep 0.2; done; "
        f"clock; echo \"vpnlab-result down $(( now - start )) {what} had no answer within {seconds:g} s\"; exit 1"
    )


def sized(size: int | None) -> tuple[str, str]:
    """ping's options and the words for a probe of ``size`` bytes with DF set (None: default)."""
    if size is None:
        return "", ""
    return f" -M do -s {int(size)}", f" ({int(size)} bytes, DF set)"


def client_probe(ctx: TunnelContext, size: int | None = None) -> str:
    """Run on the client: ping the server's tunnel address through the tunnel."""
    proto = PROTOCOLS[ctx.tunnel.protocol]
    iface = proto.client_interface(ctx)
    peer = proto.server_tunnel_address(ctx.plan, ctx.tunnel.server)
    source = proto.ping_source(ctx)
    options, words = sized(size)
    if source is None:
        return _loop(f"ping -n -c 1 -W 1{options} -I {iface} {peer}",
                     f"ping {peer}{words} from the client through {iface}", probe_seconds(ctx))
    # policy-based IPsec: the ping leaves from the tunnel's source address (the virtual IP)
    return _loop(
        f'[ -n "$src" ] && ping -n -c 1 -W 1{options} -I "$src" {peer}',
        f"ping {peer}{words} from the client's $src",
        probe_seconds(ctx),
        before=f"src=$({source}); ",
    )


def client_address_command(ctx: TunnelContext) -> str:
    """Run on the client: print the address it holds on the tunnel now (empty when none)."""
    proto = PROTOCOLS[ctx.tunnel.protocol]
    source = proto.ping_source(ctx)
    if source is not None:
        return source
    # "N: IFACE inet ADDRESS/PREFIX ..." (PPP: "inet ADDRESS peer ..."): the fourth word, without its prefix
    return f"set -- $(ip -4 -o address show dev {proto.client_interface(ctx)} 2>/dev/null); echo \"${{4%/*}}\""


def server_probe(ctx: TunnelContext, client_address: str, size: int | None = None) -> str:
    """Run on the server: ping ``client_address`` from the server's tunnel address."""
    proto = PROTOCOLS[ctx.tunnel.protocol]
    own = proto.server_tunnel_address(ctx.plan, ctx.tunnel.server)
    options, words = sized(size)
    return _loop(
        f"ping -n -c 1 -W 1{options} -I {own} {client_address}",
        f"ping {client_address}{words} from the server's {own}",
        probe_seconds(ctx),
    )


def tunnel_address(ctx: TunnelContext, printed: str) -> str | None:
    """The client's tunnel address as ``client_address_command`` printed it, when it is one
    address of this server's tunnel subnet (the only addresses a probe may go to); else None."""
    proto = PROTOCOLS[ctx.tunnel.protocol]
    words = printed.split()
    try:
        address = ipaddress.IPv4Address(words[0]) if len(words) == 1 else None
    except ValueError:
        return None
    return str(address) if address is not None and address in proto.tunnel_subnet(ctx.plan, ctx.tunnel.server) else None
