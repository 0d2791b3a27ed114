"""IKEv2: strongSwan (swanctl) with certificates made per lab and a virtual IP for each client.

Server: one connection ``ikev2`` on its WAN address, identity = its name (also a
DNS SAN of its certificate, next to its WAN IP), clients authenticated by a
certificate of the lab's CA. Clients get a virtual IP from the pool
10.106.S.10-254; the server's own tunnel address 10.106.S.1 sits on ``lo`` and
is the only traffic selector it offers (local_ts 10.106.S.1/32).

Client: one connection ``ikev2-<server>`` per tunnel (identity = its name),
started by ``swanctl --initiate`` in the background; NAT-T (UDP 4500) follows
NAT detection by itself.

Both share the node's one charon with any other IPsec protocol (see
``lab.protocols.strongswan``).

"Up" = a ping to 10.106.S.1 from the client's virtual IP answers. What the
up-check's interface means depends on the back end:

- kernel-libipsec (no kernel ESP): ``ipsec0``, the TUN device through which
  charon does ESP; the tunnel route (table 220) points into it.
- kernel ESP: there is no tunnel interface (the lab kernel's 6.1 has no XFRM
  interfaces; ip_vti would be the only route-based choice): the tunnel is
  policy-based and the interface is ``eth0``, by which the UDP-encapsulated ESP
  leaves and on which charon puts the virtual IP.

In both cases the ping leaves with the virtual IP as source (``ping -I <VIP>``):
the up-check reads it from the route charon installs for 10.106.S.1 in table
220 (``src <VIP>``), which exists only once the CHILD_SA is installed, so a
packet can never leave unprotected from the LAN address.
"""

from __future__ import annotations

from lab.protocols import strongswan
from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from lab.kernel.needs import Alternative, Need
from lab.protocols.base import Flow, NodeFile, Protocol, ServerContext, TunnelContext
from lab.protocols.options import Options, number_problem, refused
from lab.render import render

if TYPE_CHECKING:  # pragma: no cover
    from lab.check.evidence import Evidence

CONN = "ikev2"
POOL_FIRST_HOST = 10
# 'dpd: N': IKEv2 liveness checks (swanctl's dpd_delay) every N s. strongSwan 5.9 (Debian 12)
# names the actions clear|trap|restart (6.0 renamed restart to start): the client re-initiates
# a dead peer's SAs (restart), the server only forgets them (clear): a road warrior's server
# cannot call it back.
DPD_RANGE = (1, 3600)
MTU_REFUSED = (
    "not supported for ikev2: charon has no per-connection MTU (kernel-libipsec's TUN device is "
    "one for the node, and kernel ESP has no tunnel interface); mtu is an option of wireguard, "
    "openvpn-udp, openvpn-tcp, pptp, l2tp and l2tp-ipsec (its PPP link)"
)


class Ikev2(Protocol):
    name = "ikev2"
    tunnel_net = IPv4Network("10.106.0.0/16")
    interface_prefix = "ike"
    deadline = 15.0
    flows = (Flow("udp", 500), Flow("udp", 4500), Flow("esp"))
    family = "ipsec"
    listens = strongswan.LISTENS  # the node's one charon, shared with l2tp-ipsec
    kernel_needs = (
        Need(Alternative("esp", "kernel ESP"),
             Alternative("tun", "strongSwan kernel-libipsec (no kernel ESP)")),
    )
    guest_modules = strongswan.GUEST_MODULES
    guest_warmup = strongswan.GUEST_WARMUP
    ping_source_note = "the virtual IP, as source of charon's route in table 220"

    # --- server -------------------------------------------------------------

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        subnet = self.tunnel_subnet(ctx.plan, ctx.server)
        conf = render(
            "ikev2/server.conf.j2",
            conn=CONN,
            server=ctx.server,
            wan=ctx.wan_address,
            server_address=self.server_tunnel_address(ctx.plan, ctx.server),
            pool_first=subnet.network_address + POOL_FIRST_HOST,
            pool_last=subnet.broadcast_address - 1,
            ca=strongswan.CA_FILE,
            # one connection serves every client: it checks as often as the most eager asks
            dpd=self._server_dpd(ctx),
        )
        return [
            *strongswan.node_files(ctx.server, ctx.environment),
            *strongswan.pki_files(ctx.secrets, ctx.server, server=True, san_ips=(str(ctx.wan_address),)),
            strongswan.fragment(self.name, conf),
        ]

    def server_start(self, ctx: ServerContext) -> list[str]:
        address = self.server_tunnel_address(ctx.plan, ctx.server)
        return [f"ip address add {address}/32 dev lo", strongswan.start_command()]

    def server_log(self) -> str:
        return strongswan.CHARON_LOG

    def server_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        return {
            "swanctl --list-sas": strongswan.peer_sas_command(CONN, ctx.tunnel.client),
            "charon log": strongswan.peer_log_lines_command(CONN, ctx.tunnel.client, 50),
        }

    # --- client -------------------------------------------------------------

    def client_interface(self, ctx: TunnelContext) -> str:
        return "eth0" if ctx.environment.esp else strongswan.TUN_INTERFACE

    def ping_source(self, ctx: TunnelContext) -> str:
        """Shell that prints the virtual IP once charon routed the server's tunnel address."""
        peer = self.server_tunnel_address(ctx.plan, ctx.tunnel.server)
        return (
            f"ip route show table {strongswan.ROUTE_TABLE} {peer} 2>/dev/null"
            " | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p' | head -n 1"
        )

    def client_files(self, ctx: TunnelContext) -> list[NodeFile]:
        server, client = ctx.tunnel.server, ctx.tunnel.client
        conf = render(
            "ikev2/client.conf.j2",
            conn=self._conn(ctx),
            client=client,
            server=server,
            server_wan=ctx.server_wan,
            server_address=self.server_tunnel_address(ctx.plan, server),
            ca=strongswan.CA_FILE,
            dpd=ctx.tunnel.options.get("dpd"),
        )
        return [
            *strongswan.node_files(client, ctx.environment),
            *strongswan.pki_files(ctx.secrets, client, server=False),
            strongswan.fragment(self._conn(ctx), conf),
        ]

    def client_start(self, ctx: TunnelContext) -> list[str]:
        return [strongswan.start_command(), strongswan.initiate_command(self._conn(ctx), ctx.log_path)]

    def client_stop(self, ctx: TunnelContext) -> list[str]:
        return [strongswan.terminate_command(self._conn(ctx))]

    def client_shared_logs(self, ctx: TunnelContext) -> tuple[str, ...]:
        return (strongswan.CHARON_LOG,)

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        return {
            "backend": strongswan.backend_command(),
            "swanctl --list-sas": f"swanctl --list-sas --ike {self._conn(ctx)}",
            "xfrm state": strongswan.xfrm_states_command(str(ctx.server_wan)),
            "tunnel route": strongswan.routes_command(),
            "charon log": strongswan.log_lines_command(
                self._conn(ctx), 40, ctx.since_attempt(strongswan.CHARON_LOG)
            ),
        }

    def diagnose(self, evidence: Evidence) -> list[str]:
        client = evidence.client
        client_log = client.get("client log", "") + "\n" + client.get("charon log", "")
        server_log = evidence.server.get("charon log", "")
        listed = client.get("swanctl --list-sas", "")
        sas = listed + "\n" + client.get("xfrm state", "")
        facts = []
        if "ESTABLISHED" in listed and "INSTALLED" in listed:
            vip = strongswan.virtual_ip(client_log)
            facts.append("IKEv2 IKE_SA and CHILD_SA established" + (f", virtual IP {vip}" if vip else ""))
        else:
            facts += strongswan.ike_failure_facts(client_log) or (
                ["no IKE_SA established"] if client_log.strip() else []
            )
        facts += strongswan.nat_facts(client_log, server_log, sas)
        backend = strongswan.backend_fact(client.get("backend", ""))
        if backend:
            facts.append(backend)
        return facts

    options = ("dpd", "mtu")  # mtu: refused with the reason (option_problems)

    def option_problems(self, options: Options) -> dict[str, str]:
        return {
            **number_problem(options, "dpd", "seconds between IKEv2 liveness checks (dpd_delay)", DPD_RANGE),
            **refused(options, "mtu", MTU_REFUSED),
        }

    def _server_dpd(self, ctx: ServerContext) -> int | None:
        given = [int(v) for t in ctx.tunnels(self.name) if (v := t.options.get("dpd")) is not None]
        return min(given) if given else None

    @staticmethod
    def _conn(ctx: TunnelContext) -> str:
        return f"{CONN}-{ctx.tunnel.server}"
