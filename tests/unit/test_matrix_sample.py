"""A realistic matrix result for the output tests: 9 profiles × 7 protocols, with one mismatch, one skip,
down cells with evidence and a reason that would break rich markup and HTML if left unescaped."""

from __future__ import annotations

from lab.matrix.result import Cell, LabLayout, LabNode, MatrixResult, NatBehaviour, ProfileInfo

PROTOCOLS = ["wireguard", "openvpn-udp", "openvpn-tcp", "pptp", "l2tp", "l2tp-ipsec", "ikev2"]
SERVER_OF = {p: "vpn2" if p == "l2tp-ipsec" else "vpn" for p in PROTOCOLS}
PORT_OF = {"wireguard": "udp/51820", "openvpn-udp": "udp/1194", "openvpn-tcp": "tcp/1194", "pptp": "tcp/1723 and GRE",
           "l2tp": "udp/1701", "l2tp-ipsec": "udp/500, udp/4500", "ikev2": "udp/500, udp/4500"}
HOSTILE = "xl2tpd said [/x] <script>alert('owned')</script> & closed"

EIM_APDF = NatBehaviour(
    "endpoint-independent", "address-and-port-dependent",
    "endpoint-independent mapping, address-and-port-dependent filtering",
    ["binding test: 192.168.10.11:40000 -> 203.0.113.1:40000 to both STUN addresses (same mapping)",
     "filtering test: no answer from 203.0.113.21:3479 (other address and port)"],
)
SYMMETRIC = NatBehaviour(
    "address-and-port-dependent", "address-and-port-dependent",
    "address-and-port-dependent mapping, address-and-port-dependent filtering",
    ["binding test: 203.0.113.1:40000 to 203.0.113.20, 203.0.113.1:61012 to 203.0.113.21 (new mapping per destination)"],
)
NO_NAT = NatBehaviour("none", "none", "no NAT: the client's own address reaches the server",
                      ["binding test: source 192.168.10.11:40000 seen unchanged"])

# name, description, NAT, {protocol: documented reason for down}
PROFILES = [
    ("open", "Every passthrough on, PPTP helper loaded: most ISP home routers (FRITZ!Box, Archer defaults)", EIM_APDF, {}),
    ("no-helpers", "No conntrack helpers: Linux >= 4.7 defaults, OpenWrt without nathelper-extra", EIM_APDF,
     {"pptp": "no pptp helper: the server's GRE is not matched to the client's call"}),
    ("pptp-off", "PPTP passthrough unticked (Netgear, ASUS 'VPN passthrough' page)", EIM_APDF,
     {"pptp": "the router drops GRE and tcp/1723"}),
    ("l2tp-off", "L2TP passthrough unticked", EIM_APDF, {"l2tp": "the router drops udp/1701"}),
    ("ipsec-off", "IPsec passthrough unticked: IKE and ESP dropped", EIM_APDF,
     {"l2tp-ipsec": "the router drops udp/500, udp/4500 and ESP", "ikev2": "the router drops udp/500, udp/4500 and ESP"}),
    ("all-off", "Every passthrough off (business routers' secure defaults)", EIM_APDF,
     {"pptp": "the router drops GRE and tcp/1723", "l2tp": "the router drops udp/1701",
      "l2tp-ipsec": "the router drops IKE and ESP", "ikev2": "the router drops IKE and ESP"}),
    ("strict", "Guest Wi-Fi allowing web ports and tcp/1194 out (hotels, cafés)", EIM_APDF,
     {p: f"only tcp/80, tcp/443, tcp/1194 and udp/53 leave the LAN; {PORT_OF[p]} is dropped"
      for p in PROTOCOLS if p != "openvpn-tcp"}),
    ("symmetric", "Symmetric NAT: a new mapping per destination (some CGNAT, enterprise firewalls)", SYMMETRIC, {}),
    ("routed", "No NAT: a routed uplink (business line with a routed subnet)", NO_NAT, {}),
]


def _router_of(name: str) -> dict:
    return {"nat": "none" if name == "routed" else "masquerade",
            "helpers": [] if name != "open" else ["pptp"],
            "passthrough": {"pptp": name not in ("pptp-off", "all-off"), "l2tp": name not in ("l2tp-off", "all-off"),
                            "ipsec": name not in ("ipsec-off", "all-off")}}


def _down_evidence(profile: str, protocol: str, index: int) -> dict:
    log = [f"{protocol}: sending request {n} to 203.0.113.10" for n in range(1, 6)] + ["giving up after 20 s"]
    if (profile, protocol) == ("all-off", "ikev2"):  # a long log: the outputs trim it
        log = [f"[IKE] retransmit {n} of request with message ID 0 \x1b[0m" for n in range(1, 61)]
    client = {"daemon log": "\n".join(log)}
    if (profile, protocol) == ("strict", "l2tp"):
        client["daemon log"] += "\n" + HOSTILE
    return {
        "router_conntrack": [f"udp      17 29 src=192.168.10.11 dst=203.0.113.10 sport={40000 + index} "
                             f"dport=1701 [UNREPLIED] src=203.0.113.10 dst=203.0.113.1 mark=0 use=1"],
        "router_drops": [f"FORWARD: 'vpnlab block {PORT_OF[protocol]}' dropped {3 + index} packets"],
        "client": client,
        "server": {"daemon log": "no request arrived"},
        "check_output": ["waiting for the tunnel", f"vpnlab-result down 20000 no answer from 203.0.113.10 ({protocol})"],
    }


def _cell(profile: str, reasons: dict[str, str], protocol: str, index: int) -> Cell:
    expect = "down" if protocol in reasons else "up"
    client = "alice" if index % 2 == 0 else "bob"
    seconds = round(1.5 + (index * 37 % 23) / 10, 2)
    if (profile, protocol) == ("no-helpers", "pptp"):  # the mismatch: GRE got through without the helper
        return Cell(profile, client, "vpn", protocol, "down", "up",
                    "tunnel up, 10.99.0.1 answered in 412 ms; router conntrack holds 2 entries for the flow",
                    seconds, {"router_conntrack": ["gre      47 29 src=192.168.10.12 dst=203.0.113.10 srckey=0x0 "
                                                   "dstkey=0x0 src=203.0.113.10 dst=203.0.113.1 [ASSURED]"],
                              "check_output": ["vpnlab-result up 412 ping answered"]}, reasons[protocol])
    if (profile, protocol) == ("routed", "l2tp-ipsec"):
        return Cell(profile, client, "vpn2", protocol, "up", "skipped",
                    "the host kernel has no esp4: run with --runtime uml", 0.0, {})
    if expect == "down":
        reason = f"no answer within 20 s; router rule 'vpnlab block {PORT_OF[protocol]}' dropped {3 + index} packets"
        if (profile, protocol) == ("strict", "l2tp"):
            reason += "; " + HOSTILE
        return Cell(profile, client, SERVER_OF[protocol], protocol, "down", "down", reason, seconds,
                    _down_evidence(profile, protocol, index), reasons[protocol])
    return Cell(profile, client, SERVER_OF[protocol], protocol, "up", "up",
                f"tunnel up, peer answered in {100 + index * 7} ms", seconds,
                {"check_output": [f"vpnlab-result up {100 + index * 7} ping answered"]})


def sample_matrix() -> MatrixResult:
    profiles = [
        ProfileInfo(name, description, "builtin", _router_of(name),
                    {p: "down" if p in reasons else "up" for p in PROTOCOLS}, dict(reasons), nat)
        for name, description, nat, reasons in PROFILES
    ]
    cells = [_cell(name, reasons, protocol, i * len(PROTOCOLS) + j)
             for i, (name, _, _, reasons) in enumerate(PROFILES) for j, protocol in enumerate(PROTOCOLS)]
    lab = LabLayout(
        lan="192.168.10.0/24", wan="203.0.113.0/24", router="router",
        router_lan="192.168.10.1", router_wan="203.0.113.1",
        clients=[LabNode("alice", "192.168.10.11"), LabNode("bob", "192.168.10.12")],
        servers=[LabNode("vpn", "203.0.113.10", [p for p in PROTOCOLS if p != "l2tp-ipsec"]),
                 LabNode("vpn2", "203.0.113.11", ["l2tp-ipsec"])],
    )
    return MatrixResult(
        runtime="uml", runtime_reason="the host kernel lacks ppp_generic and esp4; the guest kernel has them",
        kernel="6.6.15-uml", started="2025-01-15T10:00:00+00:00", profiles=profiles, protocols=list(PROTOCOLS),
        lab=lab, cells=cells,
        seconds={"images": 2.5, "guest_boot": 11.0, "up": 120.25, "check": 260.5, "down": 30.0, "total": 424.25},
        version="0.1.0",
    )


def test_the_sample_is_the_matrix_the_outputs_are_tested_on() -> None:
    result = sample_matrix()
    assert len(result.cells) == 63 and not result.missing
    assert [(c.profile, c.protocol) for c in result.mismatches] == [("no-helpers", "pptp")]
    assert [(c.profile, c.protocol) for c in result.skipped] == [("routed", "l2tp-ipsec")]
    assert not result.passed
