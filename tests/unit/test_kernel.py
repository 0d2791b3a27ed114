"""parse_probe and check_protocol on golden probe outputs (no Docker needed)."""

from __future__ import annotations

import pytest

from lab.errors import VpnlabError
from lab.kernel import FEATURE_NAMES, check_protocol, parse_probe
from lab.protocols import PROTOCOLS

# Real output of the probe script (lab/templates/kernel/probe.sh.j2) in vpnlab/base:latest on this machine's host kernel.
HOST = """\
tools=yes missing: none
release=yes 6.18.44-fc-v669 x86_64
tun=yes created a TUN interface; engine host /dev/net/tun passed
ppp=no no char major 108 in /proc/devices; open /tmp/vpnlab-ppp: No such device or address
l2tp=no ip l2tp add: RTNETLINK answers: No such file or directory Error talking to the kernel
pptp=no PPTP socket (AF_PPPOX, PX_PROTO_PPTP): Address family not supported by protocol
xfrm=yes ip xfrm state list works
esp=no ip xfrm state add proto esp: Error: Requested type not found.
wireguard=no ip link add type wireguard: Error: Unknown device type.
pptp_helper=yes -j CT --helper pptp accepted by iptables
nf_nat_pptp=yes nf_nat_pptp symbols in /proc/kallsyms
conntrack_sysctl=yes /proc/sys/net/netfilter/nf_conntrack_udp_timeout exists
netem=no tc qdisc add netem: Error: Specified qdisc kind is unknown.
end=yes
"""

# A full kernel (UML-like, but with WireGuard too).
FULL = """\
tools=yes missing: none
release=yes 6.1.176 x86_64
tun=yes created a TUN interface; engine host /dev/net/tun passed
ppp=yes opened /dev/ppp (ppp_generic); engine host /dev/ppp passed
l2tp=yes ip l2tp tunnel created; PPPoL2TP socket ok (l2tp_ppp)
pptp=yes PPTP socket ok (pptp module)
xfrm=yes ip xfrm state list works
esp=yes ESP SA installed
wireguard=yes created a wireguard link
pptp_helper=yes -j CT --helper pptp accepted by iptables-legacy
nf_nat_pptp=yes module loaded (/sys/module/nf_nat_pptp)
conntrack_sysctl=yes /proc/sys/net/netfilter/nf_conntrack_udp_timeout exists
netem=yes tc qdisc add netem accepted
end=yes
"""

PPP = "PPP (ppp_generic, /dev/ppp)"
L2TP = "L2TP (l2tp_ppp)"
ESP = "ESP (esp4)"


def verdicts(text: str) -> dict[str, tuple[bool | None, str, list[str]]]:
    kf = parse_probe(text)
    out = {}
    for name in PROTOCOLS:
        s = check_protocol(name, kf)
        out[name] = (s.runnable, s.via, s.missing)
    return out


def test_parse_host_output():
    kf = parse_probe(HOST)
    assert kf.release == "6.18.44-fc-v669"
    assert kf.complete
    assert set(kf.features) == set(FEATURE_NAMES)
    avail = {n: f.available for n, f in kf.features.items()}
    assert avail == {
        "tun": True, "ppp": False, "l2tp": False, "pptp": False, "xfrm": True, "esp": False,
        "wireguard": False, "pptp_helper": True, "nf_nat_pptp": True, "conntrack_sysctl": True,
        "netem": False,
    }
    assert kf.features["esp"].detail == "ip xfrm state add proto esp: Error: Requested type not found."


def test_parse_is_robust_to_noise_truncation_and_unknown():
    text = "WARNING: something on stdout\n=bad\nrelease=yes 6.1.0\ntun=unknown no ip\nppp=maybe x\n"
    kf = parse_probe(text)
    assert kf.release == "6.1.0"
    assert not kf.complete  # no end=yes line
    assert kf.features["tun"].available is None
    assert kf.features["tun"].detail == "no ip"
    assert kf.features["ppp"].available is None  # invalid status ignored, then defaulted
    assert kf.features["ppp"].detail == "not reported by the probe"


def test_host_protocol_verdicts():
    assert verdicts(HOST) == {
        "wireguard": (True, "wireguard-go (userspace, no kernel WireGuard)", []),
        "openvpn-udp": (True, "TUN", []),
        "openvpn-tcp": (True, "TUN", []),
        "pptp": (False, "", [PPP]),
        "l2tp": (False, "", [PPP, L2TP]),
        "l2tp-ipsec": (False, "", [PPP, L2TP, ESP]),  # transport mode: kernel-libipsec cannot stand in
        "ikev2": (True, "strongSwan kernel-libipsec (no kernel ESP)", []),
    }


def test_full_kernel_protocol_verdicts():
    v = verdicts(FULL)
    assert all(r is True and m == [] for r, _, m in v.values())
    assert v["wireguard"][1] == "kernel WireGuard"
    assert v["ikev2"][1] == "kernel ESP"
    assert v["l2tp-ipsec"][1] == "kernel PPP + kernel L2TP + kernel ESP (transport mode)"
    assert v["pptp"][1] == "kernel PPP (GRE in user space) + pptp conntrack helper on the router"


def test_no_tun_no_esp_names_both_alternatives():
    kf = parse_probe(HOST.replace("tun=yes", "tun=no"))
    s = check_protocol("ikev2", kf)
    assert s.runnable is False
    assert s.missing == [
        "ESP (esp4) or TUN (tun, /dev/net/tun) for strongSwan kernel-libipsec (no kernel ESP)"
    ]
    w = check_protocol("wireguard", kf)
    assert w.missing == [
        "WireGuard (wireguard) or TUN (tun, /dev/net/tun) for wireguard-go (userspace, no kernel WireGuard)"
    ]


def test_pptp_helper_and_recommended_nat_helper():
    kf = parse_probe(FULL.replace("pptp_helper=yes", "pptp_helper=no").replace("nf_nat_pptp=yes", "nf_nat_pptp=no"))
    s = check_protocol("pptp", kf)
    assert s.runnable is False
    assert s.missing == ["PPTP conntrack helper (nf_conntrack_pptp, xt_CT)"]
    [note] = s.recommended_missing
    assert note.startswith("PPTP NAT helper (nf_nat_pptp): two LAN clients through one NAT need")
    assert "sudo modprobe nf_nat_pptp" in note


def test_unknown_feature_gives_undetermined_not_missing():
    kf = parse_probe(FULL.replace("esp=yes ESP SA installed", "esp=unknown no ip").replace("tun=yes", "tun=no"))
    s = check_protocol("ikev2", kf)
    assert s.runnable is None
    assert s.missing == []
    assert s.unknown and s.unknown[0].startswith("ESP (esp4) or TUN")
    # a definite miss wins over an unknown
    kf2 = parse_probe(HOST.replace("l2tp=no", "l2tp=unknown"))
    s2 = check_protocol("l2tp", kf2)
    assert s2.runnable is False and s2.missing == [PPP] and s2.unknown == [L2TP]


def test_unknown_protocol_is_a_vpnlab_error():
    with pytest.raises(VpnlabError):
        check_protocol("ipx", parse_probe(HOST))


def test_l2tp_ipsec_needs_kernel_esp_even_with_tun() -> None:
    """Transport mode: strongSwan's kernel-libipsec (tunnel mode only) cannot stand in for ESP."""
    kf = parse_probe(FULL.replace("esp=yes ESP SA installed", "esp=no ip xfrm state add proto esp: Error"))
    s = check_protocol("l2tp-ipsec", kf)
    assert s.runnable is False and s.missing == [ESP]
    assert check_protocol("ikev2", kf).via == "strongSwan kernel-libipsec (no kernel ESP)"
