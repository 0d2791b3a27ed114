"""Per-tunnel options reach the daemons' configs: the client's own value, the server's one value
for all its clients (the most demanding), and nothing at all for tunnels that set none."""

from __future__ import annotations

from lab.plan import plan_lab
from lab.topology import load_topology

from .conftest import HERE, FixedSecrets

TOPOLOGY = HERE / "topologies" / "valid" / "tunnel-options.yml"


def files_of(node: str) -> dict[str, str]:
    topology = load_topology(TOPOLOGY)
    return files_of_plan(plan_lab(topology, secrets=FixedSecrets(topology.name)), node)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_openvpn_keepalive_is_the_clients_own_and_the_server_serves_the_most_demanding() -> None:
    alice = lines(files_of("alice")["/etc/vpnlab/openvpn/openvpn-udp-vpn.conf"])
    assert ['pull-filter ignore "ping"', "ping 4", "ping-restart 20", 'pull-filter ignore "tun-mtu"', "tun-mtu 1400"] == [
        line for line in alice if line.startswith(("pull-filter", "ping", "tun-mtu"))
    ]
    bob = lines(files_of("bob")["/etc/vpnlab/openvpn/openvpn-udp-vpn.conf"])
    assert not [line for line in bob if line.startswith(("pull-filter", "ping", "tun-mtu"))]  # the pushed default
    server = files_of("vpn")
    udp = lines(server["/etc/vpnlab/openvpn/openvpn-udp-server.conf"])
    # pings as often as the most eager client (bob, on the pushed default of 2 s; alice asks 4 s);
    # gives a client up after twice the longest ping-restart (carol's 5 * 30 s)
    assert {"ping 2", "ping-restart 300", 'push "ping 2"', 'push "ping-restart 10"'} <= set(udp)
    assert "keepalive 2 10" in lines(server["/etc/vpnlab/openvpn/openvpn-tcp-server.conf"])  # no tunnel set it


def test_ikev2_dpd_restarts_on_the_client_and_clears_on_the_server() -> None:
    client = lines(files_of("bob")["/etc/swanctl/conf.d/ikev2-vpn.conf"])
    assert "dpd_delay = 5s" in client and "dpd_action = restart" in client
    carol = lines(files_of("carol")["/etc/swanctl/conf.d/ikev2-vpn.conf"])
    assert not [line for line in carol if line.startswith("dpd")]
    server = lines(files_of("vpn")["/etc/swanctl/conf.d/ikev2.conf"])
    assert "dpd_delay = 5s" in server and "dpd_action = clear" in server  # the smallest of 10 and 5


def test_mtu_reaches_wireguard_and_ppp_after_their_defaults() -> None:
    alice = files_of("alice")
    # a start command of the tunnel, once up.sh made the interface ('MTU' is not a 'wg setconf' key)
    start = alice["/etc/vpnlab/tunnels/alice-wireguard-vpn/check.sh"]
    assert start.index("ip link set dev wg0 mtu 1280") > start.index("wireguard/up.sh wg0")
    pptp = lines(alice["/etc/vpnlab/pptp/vpn.options"])
    # after the common options file, whose 'mtu 1400' would otherwise win (pppd: the last one counts)
    assert pptp.index("mtu 1400") > pptp.index("file /etc/vpnlab/ppp/common.options")
    l2tp = lines(files_of("bob")["/etc/vpnlab/l2tp/vpn.options"])
    assert l2tp.index("mru 1280") > l2tp.index("file /etc/vpnlab/ppp/common.options")


# --- OpenVPN's port: the server listens there, and everything that matches its traffic follows


MOVED = """name: moved
router: {profile: strict}
servers: [{name: vpn, protocols: [openvpn-tcp, openvpn-udp]}]
clients: [{name: alice}]
tunnels:
  - {client: alice, server: vpn, protocol: openvpn-tcp, options: {port: 443}}
  - {client: alice, server: vpn, protocol: openvpn-udp, options: {port: 8443}}
"""


def test_a_moved_port_is_the_tunnels_flow_and_a_strict_router_names_it() -> None:
    from lab.check.evidence import RuleHit, drops_for
    from lab.protocols.ports import flows_of
    from lab.topology import parse_topology

    topology = parse_topology(MOVED)
    plan = plan_lab(topology, secrets=FixedSecrets(topology.name))
    tcp, udp = topology.tunnels
    assert [f.label for f in flows_of(tcp)] == ["tcp/443"] and [f.label for f in flows_of(udp)] == ["udp/8443"]
    # tcp/443 is allowed out; udp/8443 is not, and gets its own named drop beside the registry's
    assert "tcp/443" not in " ".join(d.comment for d in plan.router.strict_drops)
    named = [d for d in plan.router.strict_drops if d.port_low == 8443]
    assert [(d.proto, d.comment) for d in named] == [("udp", "vpnlab: strict: not allowed out (udp/8443)")]
    # that rule's hits are the tunnel's drops; udp/1194's are not
    hits = [RuleHit("FORWARD", named[0].comment, 9), RuleHit("FORWARD", "vpnlab: strict: not allowed out (udp/1194)", 4)]
    assert [h.packets for h in drops_for(hits, flows_of(udp))] == [9]
    server = files_of_plan(plan, "vpn")
    assert "port 443" in lines(server["/etc/vpnlab/openvpn/openvpn-tcp-server.conf"])
    assert "port 8443" in lines(server["/etc/vpnlab/openvpn/openvpn-udp-server.conf"])
    assert "remote 203.0.113.10 8443" in lines(files_of_plan(plan, "alice")["/etc/vpnlab/openvpn/openvpn-udp-vpn.conf"])


def files_of_plan(plan: object, node: str) -> dict[str, str]:
    return {f.path: f.content for f in plan.node(node).files}  # type: ignore[attr-defined]
