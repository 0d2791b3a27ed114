"""What a packet capture shows about the VPN flows in it, as short sentences.

A pure function of the pcap's bytes (no Docker, no tcpdump): ``vpnlab capture`` prints these
facts after copying a capture to the host, and tests assert them. The flows looked for are the
registered protocols' (lab.protocols: UDP 1194, UDP 500/4500, TCP 1723, GRE, ESP...), so a
plugin's ports are named too.

"Out" is the way towards the flow's well-known port (client to server), "in" the way back: a
packet whose ports are both the well-known one (IKE from 500 to 500) goes the way of the first
packet of its conversation seen in the capture.
"""

from __future__ import annotations

import io
import socket
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dpkt

from lab.errors import PcapError

if TYPE_CHECKING:  # pragma: no cover
    from lab.protocols.base import Flow

IPPROTO_NAMES = {"tcp": dpkt.ip.IP_PROTO_TCP, "udp": dpkt.ip.IP_PROTO_UDP}
ESP, GRE = dpkt.ip.IP_PROTO_ESP, dpkt.ip.IP_PROTO_GRE
NAT_T_PORT = 4500  # RFC 3948: ESP inside UDP 4500, told from IKE by a non-zero first word
L2TP_PORT = 1701  # L2TP/IPsec must never show it outside ESP
PPTP_PORT = 1723
# pcap link types (https://www.tcpdump.org/linktypes.html) this module unwraps to IP
ETHERNET, LINUX_SLL, LINUX_SLL2 = 1, 113, 276
RAW_IP = {12, 14, 101, 228, 229}  # a tun device (wg0, tun0) captures as raw IP


Endpoint = tuple[str, int]


@dataclass
class FlowCount:
    """Packets of one (IP protocol, well-known port) flow, each way."""

    out: int = 0
    back: int = 0


@dataclass
class Observed:
    packets: int = 0
    flows: dict[tuple[int, int], FlowCount] = field(default_factory=dict)
    esp_bare: int = 0
    esp_in_udp: int = 0
    gre: int = 0
    gre_call_ids: Counter[int] = field(default_factory=Counter)
    servers: dict[frozenset[Endpoint], Endpoint] = field(default_factory=dict)  # conversation -> its first packet's destination


def known_flows(moved: Iterable[tuple[str, Flow]] = ()) -> dict[tuple[int, int], list[str]]:
    """(IP protocol number, port) -> the registered protocols that use it, and the (protocol,
    flow) pairs a lab's tunnels ``moved`` (lab.protocols.ports.moved_flows) beside them."""
    from lab.protocols import PROTOCOLS

    flows: dict[tuple[int, int], list[str]] = {}
    pairs = [(protocol.name, flow) for protocol in PROTOCOLS.values() for flow in protocol.flows]
    for name, flow in [*pairs, *moved]:
        if flow.port is not None and flow.proto in IPPROTO_NAMES:
            names = flows.setdefault((IPPROTO_NAMES[flow.proto], flow.port), [])
            if name not in names:
                names.append(name)
    return flows


def read_packets(data: bytes) -> tuple[int, list[bytes]]:
    """(link type, frames) of a pcap or pcapng capture; PcapError if it is neither."""
    for reader in (dpkt.pcap.Reader, dpkt.pcapng.Reader):
        try:
            capture = reader(io.BytesIO(data))
            return capture.datalink(), [frame for _, frame in capture]
        except (ValueError, dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError, struct.error):
            continue
    raise PcapError(f"not a pcap capture ({len(data)} bytes)")


def ip_of(linktype: int, frame: bytes) -> dpkt.Packet | None:
    """The frame's IPv4 or IPv6 packet, or None (ARP, another link type, a cut frame)."""
    try:
        if linktype == ETHERNET:
            packet = dpkt.ethernet.Ethernet(frame).data
        elif linktype == LINUX_SLL:
            packet = dpkt.sll.SLL(frame).data
        elif linktype == LINUX_SLL2:
            packet = dpkt.sll2.SLL2(frame).data
        elif linktype in RAW_IP and frame:
            packet = (dpkt.ip.IP if frame[0] >> 4 == 4 else dpkt.ip6.IP6)(frame)
        else:
            return None
    except (dpkt.dpkt.UnpackError, struct.error):
        return None
    return packet if isinstance(packet, (dpkt.ip.IP, dpkt.ip6.IP6)) else None


def addresses(packet: dpkt.Packet) -> tuple[str, str]:
    family = socket.AF_INET if isinstance(packet, dpkt.ip.IP) else socket.AF_INET6
    return socket.inet_ntop(family, packet.src), socket.inet_ntop(family, packet.dst)


def gre_call_id(payload: bytes) -> int | None:
    """The call ID of an enhanced GRE header (RFC 2637, version 1, the key's low half), else None."""
    if len(payload) < 8:
        return None
    flags = struct.unpack_from(">H", payload)[0]
    if flags & 0x7 != 1 or not flags & 0x2000:  # version 1 with the key present
        return None
    at = 8 if flags & 0x8000 else 4  # a checksum word comes first when C is set
    return struct.unpack_from(">H", payload, at + 2)[0] if len(payload) >= at + 4 else None


def observe(data: bytes, flows: dict[tuple[int, int], list[str]], peer: str | None = None) -> Observed:
    """What the capture holds of these flows (and of ESP and GRE); ``peer``: only the packets
    to or from that address (one tunnel's server), else all of them."""
    linktype, frames = read_packets(data)
    seen = Observed(packets=len(frames))
    for frame in frames:
        packet = ip_of(linktype, frame)
        if packet is None or (peer is not None and peer not in addresses(packet)):
            continue
        proto = packet.p if isinstance(packet, dpkt.ip.IP) else packet.nxt
        if isinstance(packet, dpkt.ip.IP) and packet.offset:
            continue  # a later fragment: no transport header to read
        if proto == ESP:
            seen.esp_bare += 1
        elif proto == GRE:
            seen.gre += 1
            call_id = gre_call_id(bytes(packet.data))
            if call_id is not None:
                seen.gre_call_ids[call_id] += 1
        elif proto in IPPROTO_NAMES.values() and isinstance(packet.data, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            count_ports(seen, packet, proto, flows)
    return seen


def count_ports(seen: Observed, packet: dpkt.Packet, proto: int, flows: dict[tuple[int, int], list[str]]) -> None:
    l4 = packet.data
    src, dst = addresses(packet)
    source, destination = (src, l4.sport), (dst, l4.dport)
    server = seen.servers.setdefault(frozenset((source, destination)), destination)
    if proto == dpkt.ip.IP_PROTO_UDP and NAT_T_PORT in (l4.sport, l4.dport):
        payload = bytes(l4.data)
        if len(payload) >= 8 and payload[:4] != b"\0\0\0\0":  # not IKE's non-ESP marker, not a keepalive
            seen.esp_in_udp += 1
    for port in dict.fromkeys((l4.dport, l4.sport)):
        if (proto, port) not in flows:
            continue
        count = seen.flows.setdefault((proto, port), FlowCount())
        towards_port = l4.dport == port and (l4.sport != port or destination == server)
        if towards_port:
            count.out += 1
        else:
            count.back += 1


def pcap_facts(data: bytes, flows: dict[tuple[int, int], list[str]] | None = None) -> list[str]:
    """Sentences about the VPN flows in the capture ``data`` (pcap or pcapng bytes).

    Args:
        data: the capture file's bytes.
        flows: (IP protocol number, port) -> protocol names to look for; default the registry's.
    Raises:
        PcapError: ``data`` is not a capture.
    """
    flows = known_flows() if flows is None else flows
    seen = observe(data, flows)
    facts = [f"{seen.packets} packet(s) captured" if seen.packets else "no packets captured"]
    facts += [flow_fact(key, count, flows) for key, count in sorted(seen.flows.items(), key=lambda item: (item[0][1], item[0][0]))]
    facts += esp_facts(seen) + gre_facts(seen)
    ipsec = seen.esp_bare or seen.esp_in_udp or any(port in (500, NAT_T_PORT) for _, port in seen.flows)
    if ipsec and (dpkt.ip.IP_PROTO_UDP, L2TP_PORT) not in seen.flows:
        facts.append(f"no bare UDP {L2TP_PORT}")
    return facts


def flow_fact(key: tuple[int, int], count: FlowCount, flows: dict[tuple[int, int], list[str]]) -> str:
    proto, port = key
    name = f"{'TCP' if proto == dpkt.ip.IP_PROTO_TCP else 'UDP'} {port} ({', '.join(flows[key])})"
    if count.out and count.back:
        return f"{name} both ways: {count.out} packet(s) out, {count.back} in"
    if count.out:
        return f"{name} one way only: {count.out} packet(s) out, none back"
    return f"{name} one way only: {count.back} packet(s) in, none out"


def tunnel_facts(data: bytes, protocols: list[str], moved: Mapping[str, tuple[Flow, ...]] | None = None,
                 peer: str | None = None) -> dict[str, list[str]]:
    """For each registered protocol named, the facts of the capture ``data`` about its own flows:
    its ports (or that none of its packets are there), ESP for the IPsec ones, GRE for PPTP,
    and for L2TP/IPsec whether L2TP (UDP 1701) showed outside ESP. ``moved``: a protocol's
    flows where a tunnel's options moved them (lab.protocols.ports); ``peer``: only the packets
    to or from that address (a tunnel's server: another server's tunnel of the same protocol
    is not this one's). PcapError: not a capture."""
    from lab.protocols import PROTOCOLS

    own = {name: (moved or {}).get(name, PROTOCOLS[name].flows) for name in dict.fromkeys(protocols)}
    flows = known_flows([(name, f) for name, theirs in own.items() for f in theirs])
    seen = observe(data, flows, peer)
    facts: dict[str, list[str]] = {}
    for name, theirs in own.items():
        kinds = {flow.proto for flow in theirs}
        ports = [(IPPROTO_NAMES[f.proto], f.port) for f in theirs if f.proto in IPPROTO_NAMES and f.port]
        mine = [flow_fact(key, seen.flows[key], flows) for key in ports if key in seen.flows]
        if not mine:
            labels = ", ".join(f"{'TCP' if proto == dpkt.ip.IP_PROTO_TCP else 'UDP'} {port}" for proto, port in ports)
            mine = [f"no {labels} packets ({name})"] if labels else []
        if "esp" in kinds:
            mine += esp_facts(seen) or ["no ESP, bare or inside UDP 4500"]
        if "gre" in kinds:
            mine += gre_facts(seen) or ["no GRE (IP protocol 47)"]
        if name == "l2tp-ipsec":  # its L2TP must travel inside ESP, never as bare UDP 1701
            bare = seen.flows.get((dpkt.ip.IP_PROTO_UDP, L2TP_PORT))
            mine.append(f"bare UDP {L2TP_PORT}: {bare.out + bare.back} packet(s), L2TP outside ESP" if bare
                        else f"no bare UDP {L2TP_PORT}")
        facts[name] = mine
    return facts


def gre_call_ids_from(data: bytes, source: str) -> dict[str, list[int]]:
    """Destination -> the PPTP call IDs (distinct, first seen first) of the GRE packets from
    ``source`` in the capture ``data``. A capture of both sides of a NAT (``-i any`` on the
    router) holds a server's packets twice: to the router's WAN address, then to the client."""
    linktype, frames = read_packets(data)
    ids: dict[str, list[int]] = {}
    for frame in frames:
        packet = ip_of(linktype, frame)
        if not isinstance(packet, dpkt.ip.IP) or packet.p != GRE or packet.offset:
            continue
        src, dst = addresses(packet)
        call_id = gre_call_id(bytes(packet.data)) if src == source else None
        if call_id is not None and call_id not in ids.setdefault(dst, []):
            ids[dst].append(call_id)
    return ids


def esp_facts(seen: Observed) -> list[str]:
    if seen.esp_in_udp and not seen.esp_bare:
        return [f"ESP only inside UDP {NAT_T_PORT} ({seen.esp_in_udp} packet(s)), no bare ESP"]
    if seen.esp_bare and not seen.esp_in_udp:
        return [f"bare ESP only (IP protocol 50, {seen.esp_bare} packet(s)), none inside UDP {NAT_T_PORT}"]
    if seen.esp_bare:
        return [f"ESP both bare ({seen.esp_bare} packet(s)) and inside UDP {NAT_T_PORT} ({seen.esp_in_udp})"]
    return []


def gre_facts(seen: Observed) -> list[str]:
    if seen.gre_call_ids:
        ids = ", ".join(f"0x{call_id:04x}" for call_id in sorted(seen.gre_call_ids))
        return [f"GRE call IDs seen: {ids} ({seen.gre} GRE packet(s))"]
    if seen.gre:
        return [f"GRE: {seen.gre} packet(s), none with a PPTP call ID"]
    if (dpkt.ip.IP_PROTO_TCP, PPTP_PORT) in seen.flows:
        return [f"no GRE (IP protocol 47) beside TCP {PPTP_PORT}"]
    return []
