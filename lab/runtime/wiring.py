"""The lab's own links: veth pairs into each node, plugged into bridges in a switch node.

Why not Docker networks: with br_netfilter on (Docker's default), an
``internal`` network's isolation rules drop the traffic a router container
routes, and fixing that needs a rule in the host's DOCKER-USER chain. Links
made here touch neither the host's firewall nor its routing: every node
starts with network ``none``; the switch node (which sees host PIDs but has
only NET_ADMIN) creates each veth pair with one end directly in the node's
namespace and the other on its LAN or WAN bridge. When a node's container
goes, its links go with it; when the switch goes, the segments go.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.nodes import NodeSpec

BRIDGES = {"lan": "br-lan", "wan": "br-wan", "middle": "br-middle"}  # middle: double NAT's, made when used


@dataclass(frozen=True)
class Port:
    node: str
    pid: int
    ifname: str  # inside the node
    segment: str
    switch_port: str  # the veth end on the switch's bridge
    mtu: int | None = None  # both ends (a topology's link mtu); None: the kernel's default


def plan_ports(nodes: list[NodeSpec], pids: dict[str, int]) -> list[Port]:
    ports = []
    for node in nodes:
        for link in node.links:
            ports.append(Port(node.name, pids[node.name], link.ifname, link.segment, f"p{len(ports)}", link.mtu))
    return ports


def wiring_script(ports: list[Port]) -> str:
    lines = ["set -eu"]
    used = {"lan", "wan"} | {port.segment for port in ports}
    for bridge in (bridge for segment, bridge in BRIDGES.items() if segment in used):
        lines += [
            f"ip link add {bridge} type bridge",
            f"ip link set {bridge} type bridge stp_state 0 forward_delay 0",
            f"ip link set {bridge} up",
        ]
    for port in ports:
        lines += [
            f"# {port.node}: {port.ifname} on the {port.segment} segment",
            f"ip link add {port.switch_port} type veth peer name {port.ifname} netns {port.pid}",
        ]
        if port.mtu is not None:
            # Both ends: the bridge drops a frame larger than its port's MTU without a word
            # (no ICMP from layer 2), so a lower MTU on one end only would be a silent black
            # hole. The node's end is set as it is made: the switch cannot enter the node's
            # namespace afterwards (setns needs more than NET_ADMIN).
            lines[-1] = (f"ip link add {port.switch_port} mtu {port.mtu:d} type veth"
                         f" peer name {port.ifname} mtu {port.mtu:d} netns {port.pid}")
        lines.append(f"ip link set {port.switch_port} master {BRIDGES[port.segment]} up")
    return "\n".join(lines) + "\n"
