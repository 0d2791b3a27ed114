"""The protocol registry: every protocol's facts are well-formed and unique, and a protocol
defined in this file alone (a throw-away SSTP) reaches every place that derives from the
registry — topology validation, the doctor, the router's passthrough, the guest's modules."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from ipaddress import IPv4Network

import pytest

from lab import doctor
from lab.errors import TopologyError, VpnlabError
from lab.kernel import Alternative, Need, check_protocol, parse_probe
from lab.protocols import PROTOCOLS, Flow, Listen, Protocol, ProtocolError, Registry, register, unregister
from lab.router.rules import plan_router, render_ruleset
from lab.runtime.uml import guest_modules
from lab.topology import parse_topology, plan_addresses

from .test_kernel import FULL


class Sstp(Protocol):
    """SSTP as a plugin would declare it (only the facts: nothing here renders a config)."""

    name = "sstp"
    tunnel_net = IPv4Network("10.107.0.0/16")
    interface_prefix = "sstp"
    flows = (Flow("tcp", 443),)
    family = "sstp"
    listens = (Listen("tcp", 443),)
    kernel_needs = (Need(Alternative("ppp", "kernel PPP")),)
    guest_modules = ("ppp_generic", "ppp_synctty")


class SstpBeta(Sstp):
    """Another server on the same port: cannot share a server with Sstp."""

    name = "sstp-beta"
    tunnel_net = IPv4Network("10.108.0.0/16")
    interface_prefix = "sstpb"
    family = None


@pytest.fixture
def sstp() -> Iterator[Protocol]:
    protocol = register(Sstp())
    yield protocol
    unregister("sstp")


def topology(protocols: str, extra: str = "") -> str:
    return (
        f"name: t\nservers: [{{name: vpn, protocols: [{protocols}]}}]\nclients: [{{name: alice}}]\n"
        f"tunnels: [{{client: alice, server: vpn, protocol: sstp}}]\n{extra}"
    )


# --- the built-in protocols ----------------------------------------------------


def test_every_protocol_has_a_tunnel_net_and_interface_prefix_of_its_own() -> None:
    protocols = list(PROTOCOLS.values())
    for i, protocol in enumerate(protocols):
        assert protocol.tunnel_net.prefixlen <= 16 and protocol.tunnel_net.is_private, protocol.name
        assert len(protocol.interface_prefix + "99") <= 15, protocol.name
        for other in protocols[i + 1:]:
            assert not protocol.tunnel_net.overlaps(other.tunnel_net), (protocol.name, other.name)
            assert protocol.interface_prefix != other.interface_prefix, (protocol.name, other.name)


def test_every_protocols_flows_and_listens_are_well_formed() -> None:
    for protocol in PROTOCOLS.values():
        assert protocol.flows, protocol.name
        for flow in protocol.flows:
            if flow.proto in ("tcp", "udp"):
                assert flow.port is not None and 0 < flow.port < 65536, (protocol.name, flow)
            else:
                assert flow.port is None, (protocol.name, flow)
        assert protocol.listens, protocol.name
        for listen in protocol.listens:
            assert listen.proto in ("tcp", "udp") and 0 < listen.port < 65536, (protocol.name, listen)
        assert protocol.kernel_needs and all(need.alternatives for need in protocol.kernel_needs), protocol.name


def test_the_registry_refuses_conflicting_facts() -> None:
    class Clone(Sstp):
        name = "wireguard"
        tunnel_net = IPv4Network("10.100.0.0/16")
        interface_prefix = "wg"

    with pytest.raises(ProtocolError) as caught:
        register(Clone())
    message = str(caught.value)
    assert "registered already" in message and "overlaps wireguard's 10.100.0.0/16" in message
    assert "interface_prefix 'wg' is wireguard's" in message
    assert list(PROTOCOLS)[-1] == "ikev2"


def test_passthrough_flows_derive_from_the_families() -> None:
    from lab.router.helpers import passthrough_flows

    assert passthrough_flows() == {
        "pptp": [("tcp", 1723), ("gre", None)],
        "l2tp": [("udp", 1701)],
        "ipsec": [("udp", 500), ("udp", 4500), ("esp", None)],
    }


def test_the_guest_loads_the_same_modules_as_before_the_registry_and_the_esp_templates() -> None:
    before = {
        "tun", "veth", "bridge", "overlay", "ppp_generic", "ppp_async", "ppp_deflate", "ppp_mppe", "pptp",
        "l2tp_ppp", "esp4", "xfrm_user", "ip_tables", "iptable_filter", "iptable_nat", "iptable_raw",
        "iptable_mangle", "nf_conntrack_pptp", "nf_nat_pptp", "xt_CT", "xt_comment", "xt_conntrack",
        "xt_MASQUERADE", "xt_policy", "xt_tcpudp", "sch_netem", "gcm", "ghash_generic", "ctr", "seqiv",
    }
    # what the kernel asked modprobe for on a guest's first ESP SAs (logs/modprobe.log), now loaded at boot
    esp_templates = {"cryptomgr", "cbc", "hmac", "authenc", "echainiv", "sha512_generic", "drbg", "jitterentropy_rng"}
    modules = guest_modules()
    assert set(modules) == before | esp_templates and len(modules) == len(set(modules))


def test_the_guest_builds_the_esp_algorithms_at_boot_with_on_demand_loading_off() -> None:
    from lab.render import render
    from lab.runtime.uml import guest_warmup

    warmup = guest_warmup()
    assert any("rfc4106(gcm(aes))" in c for c in warmup) and any("hmac(sha256)" in c for c in warmup)
    assert warmup[-1] == "ip xfrm state flush" and len(warmup) == len(set(warmup))
    init = render("uml/init.sh.j2", modules_dir="/m", modules=["tun"], warmup=warmup, slot_dir="/s",
                  guest_ip="169.254.64.2", engine_port=2375)
    off, first = init.index("echo >/proc/sys/kernel/modprobe"), init.index(warmup[0])
    on = init.rindex("echo /tmp/mods/modprobe >/proc/sys/kernel/modprobe")  # loading on demand again after
    assert off < first < on


def test_default_passthrough_dumps_as_before() -> None:
    t = parse_topology("name: t\nservers: [{name: vpn, protocols: [wireguard]}]\nclients: [{name: a}]\n")
    assert t.model_dump(mode="json")["router"]["passthrough"] == {"pptp": True, "l2tp": True, "ipsec": True}


# --- a protocol defined here alone ---------------------------------------------------


def test_topology_validation_accepts_it(sstp: Protocol) -> None:
    t = parse_topology(topology("sstp, wireguard", "router: {passthrough: {sstp: false}}\n"))
    assert t.tunnels[0].protocol == "sstp"
    assert t.router.passthrough == {"pptp": True, "l2tp": True, "ipsec": True, "sstp": False}
    assert sstp.server_tunnel_address(plan_addresses(t), "vpn") == IPv4Network("10.107.0.0/24")[1]


def test_topology_validation_rejects_a_port_clash_on_one_server(sstp: Protocol) -> None:
    register(SstpBeta())
    try:
        with pytest.raises(TopologyError) as caught:
            parse_topology(topology("sstp, ikev2, sstp-beta"))
    finally:
        unregister("sstp-beta")
    assert [str(p) for p in caught.value.problems] == [
        "servers[0].protocols: 'sstp' and 'sstp-beta' cannot share a server: both listen on tcp/443 (use two servers)"
    ]


def test_unknown_passthrough_family_names_the_known_ones(sstp: Protocol) -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology(topology("sstp", "router: {passthrough: {sstpp: false}}\n"))
    [problem] = caught.value.problems
    assert problem.location == "router.passthrough.sstpp"
    assert problem.message == "unknown passthrough family 'sstpp' (known: pptp, l2tp, ipsec, sstp)"


def test_the_doctor_checks_it(sstp: Protocol) -> None:
    assert doctor.doctor_protocols()[-1] == "sstp"
    assert check_protocol("sstp", parse_probe(FULL)).via == "kernel PPP"
    missing = check_protocol("sstp", parse_probe(FULL.replace("ppp=yes", "ppp=no")))
    assert missing.runnable is False and missing.missing == ["PPP (ppp_generic, /dev/ppp)"]


def test_the_router_drops_its_family_when_passthrough_is_off(sstp: Protocol) -> None:
    t = parse_topology(topology("sstp", "router: {passthrough: {sstp: false}}\n"))
    router = plan_router(t, plan_addresses(t))
    assert [(d.comment, d.match) for d in router.drops] == [("vpnlab: passthrough sstp off (tcp/443)", "-p tcp --dport 443")]
    assert '-A FORWARD -p tcp --dport 443 -m comment --comment "vpnlab: passthrough sstp off (tcp/443)" -j DROP' in (
        render_ruleset(router)
    )


def test_the_guest_loads_its_modules(sstp: Protocol) -> None:
    modules = guest_modules()
    assert "ppp_synctty" in modules and modules.count("ppp_generic") == 1


# --- plugins ---------------------------------------------------------------------


def entry_points_of(*points: importlib.metadata.EntryPoint):
    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        assert group == "vpnlab.protocols"
        return list(points)

    return entry_points


def test_a_plugin_is_loaded_from_its_entry_point_on_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = importlib.metadata.EntryPoint("sstp", f"{__name__}:Sstp", "vpnlab.protocols")
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points_of(plugin))
    registry = Registry()
    assert "sstp" in registry and isinstance(registry["sstp"], Sstp)


def test_a_broken_plugin_is_one_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = importlib.metadata.EntryPoint("vpn-x", "vpnlab_no_such_module:VpnX", "vpnlab.protocols")
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points_of(broken))
    registry = Registry()
    for _ in range(2):  # every read says the same
        with pytest.raises(VpnlabError) as caught:
            list(registry)
        assert "protocol plugin 'vpn-x' (vpnlab_no_such_module:VpnX" in str(caught.value)
        assert "No module named 'vpnlab_no_such_module'" in str(caught.value)
