"""pcap facts from small captures built here with dpkt: no Docker, no tcpdump."""

from __future__ import annotations

import io
import socket
import struct

import dpkt
import pytest

from lab.errors import PcapError
from lab.pcap_facts import pcap_facts

CLIENT, SERVER = "203.0.113.2", "203.0.113.10"


def ip(src: str, dst: str, proto: int, payload: dpkt.Packet | bytes) -> dpkt.ip.IP:
    packet = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64, data=payload)
    packet.len = len(packet)  # dpkt fills the header's length and checksum when packed
    return packet


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes = b"x" * 20) -> dpkt.ip.IP:
    datagram = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    datagram.ulen = len(datagram)
    return ip(src, dst, dpkt.ip.IP_PROTO_UDP, datagram)


def tcp(src: str, sport: int, dst: str, dport: int) -> dpkt.ip.IP:
    return ip(src, dst, dpkt.ip.IP_PROTO_TCP, dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_SYN))


def gre_v1(call_id: int) -> bytes:
    """An enhanced GRE header (PPTP): key and version 1, protocol PPP, payload length 0."""
    return struct.pack(">HHHH", 0x2001, 0x880B, 0, call_id)


LINUX_SLL, LINUX_SLL2 = 113, 276  # tcpdump -i any


def framed(packet: dpkt.ip.IP, linktype: int) -> bytes:
    if linktype == dpkt.pcap.DLT_EN10MB:
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=packet))
    if linktype == LINUX_SLL:
        return bytes(dpkt.sll.SLL(ethtype=dpkt.ethernet.ETH_TYPE_IP, hlen=6, hdr=b"\x02" * 6 + b"\0\0", data=packet))
    if linktype == LINUX_SLL2:
        return bytes(dpkt.sll2.SLL2(ethtype=dpkt.ethernet.ETH_TYPE_IP, hlen=6, hdr=b"\x02" * 6 + b"\0\0", data=packet))
    return bytes(packet)


def pcap(packets: list[dpkt.ip.IP], linktype: int = dpkt.pcap.DLT_EN10MB) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=linktype)
    for n, packet in enumerate(packets):
        frame = framed(packet, linktype)
        writer.writepkt(frame, ts=1700000000 + n / 10)
    return out.getvalue()


def test_openvpn_udp_both_ways_counts_each_direction() -> None:
    packets = [udp(CLIENT, 40000, SERVER, 1194)] * 3 + [udp(SERVER, 1194, CLIENT, 40000)] * 2
    facts = pcap_facts(pcap(packets))
    assert facts[0] == "5 packet(s) captured"
    assert "UDP 1194 (openvpn-udp) both ways: 3 packet(s) out, 2 in" in facts


def test_one_way_flow_says_nothing_came_back() -> None:
    facts = pcap_facts(pcap([udp(CLIENT, 40000, SERVER, 51820)] * 4))
    assert "UDP 51820 (wireguard) one way only: 4 packet(s) out, none back" in facts


def test_ike_from_500_to_500_goes_the_way_of_its_first_packet() -> None:
    packets = [udp(CLIENT, 500, SERVER, 500), udp(SERVER, 500, CLIENT, 500), udp(CLIENT, 500, SERVER, 500)]
    facts = pcap_facts(pcap(packets))
    assert "UDP 500 (l2tp-ipsec, ikev2) both ways: 2 packet(s) out, 1 in" in facts


def test_esp_only_inside_udp_4500_and_no_bare_l2tp() -> None:
    ike = b"\0\0\0\0" + b"i" * 40  # the non-ESP marker: IKE on port 4500
    esp = struct.pack(">II", 0xC0FFEE01, 1) + b"e" * 40
    keepalive = b"\xff"
    packets = [udp(CLIENT, 4500, SERVER, 4500, ike), udp(SERVER, 4500, CLIENT, 4500, ike),
               udp(CLIENT, 4500, SERVER, 4500, esp), udp(SERVER, 4500, CLIENT, 4500, esp),
               udp(CLIENT, 4500, SERVER, 4500, keepalive)]
    facts = pcap_facts(pcap(packets))
    assert "ESP only inside UDP 4500 (2 packet(s)), no bare ESP" in facts
    assert "no bare UDP 1701" in facts


def test_bare_esp_and_bare_l2tp_are_named() -> None:
    esp = struct.pack(">II", 0x1234, 1) + b"e" * 40
    packets = [ip(CLIENT, SERVER, dpkt.ip.IP_PROTO_ESP, esp), udp(CLIENT, 1701, SERVER, 1701)]
    facts = pcap_facts(pcap(packets))
    assert "bare ESP only (IP protocol 50, 1 packet(s)), none inside UDP 4500" in facts
    assert not any(fact.startswith("no bare UDP 1701") for fact in facts)
    assert any(fact.startswith("UDP 1701 (l2tp") for fact in facts)


def test_gre_call_ids_of_pptp() -> None:
    packets = [tcp(CLIENT, 40000, SERVER, 1723), ip(CLIENT, SERVER, dpkt.ip.IP_PROTO_GRE, gre_v1(0x8A3C)),
               ip(SERVER, CLIENT, dpkt.ip.IP_PROTO_GRE, gre_v1(0x0001))]
    facts = pcap_facts(pcap(packets))
    assert "GRE call IDs seen: 0x0001, 0x8a3c (2 GRE packet(s))" in facts
    assert "TCP 1723 (pptp) one way only: 1 packet(s) out, none back" in facts


def test_pptp_control_without_gre_says_so() -> None:
    facts = pcap_facts(pcap([tcp(CLIENT, 40000, SERVER, 1723), tcp(SERVER, 1723, CLIENT, 40000)]))
    assert "no GRE (IP protocol 47) beside TCP 1723" in facts


@pytest.mark.parametrize("linktype", [dpkt.pcap.DLT_RAW, LINUX_SLL, LINUX_SLL2], ids=["raw-tun", "sll-any", "sll2-any"])
def test_other_link_types(linktype: int) -> None:
    facts = pcap_facts(pcap([udp(CLIENT, 40000, SERVER, 1194)], linktype=linktype))
    assert "UDP 1194 (openvpn-udp) one way only: 1 packet(s) out, none back" in facts


def test_a_later_fragment_is_not_read_as_ports() -> None:
    fragment = udp(CLIENT, 40000, SERVER, 1194)
    fragment.offset = 1480  # its bytes are the middle of a datagram: no UDP header there
    facts = pcap_facts(pcap([fragment]))
    assert facts == ["1 packet(s) captured"]


def test_empty_capture_and_other_traffic() -> None:
    assert pcap_facts(pcap([])) == ["no packets captured"]
    assert pcap_facts(pcap([udp(CLIENT, 40000, SERVER, 53)])) == ["1 packet(s) captured"]


def test_flows_can_be_given() -> None:
    facts = pcap_facts(pcap([udp(CLIENT, 40000, SERVER, 9999)]), flows={(dpkt.ip.IP_PROTO_UDP, 9999): ["mine"]})
    assert "UDP 9999 (mine) one way only: 1 packet(s) out, none back" in facts


@pytest.mark.parametrize("data", [b"", b"not a capture at all, just text"])
def test_not_a_capture_is_one_error(data: bytes) -> None:
    with pytest.raises(PcapError, match="not a pcap capture"):
        pcap_facts(data)
