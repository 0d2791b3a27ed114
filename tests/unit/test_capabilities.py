"""Capabilities (what a kernel means for each protocol) and the lab plan: pure values, no Docker."""

from __future__ import annotations

import pytest

from lab.capabilities import Capabilities
from lab.kernel import parse_probe
from lab.plan import plan_lab
from lab.topology import parse_topology

from .conftest import FixedSecrets
from .test_kernel import FULL, HOST

TOPOLOGY = parse_topology(
    """
name: caps
servers: [{name: vpn, protocols: [wireguard, pptp, ikev2]}]
clients: [{name: alice}]
tunnels:
  - {client: alice, server: vpn, protocol: wireguard}
  - {client: alice, server: vpn, protocol: pptp}
  - {client: alice, server: vpn, protocol: ikev2}
"""
)
NO_NAT_PPTP = FULL.replace("nf_nat_pptp=yes module loaded (/sys/module/nf_nat_pptp)", "nf_nat_pptp=no not loaded")


def test_the_host_kernel_skips_what_it_lacks_and_names_it() -> None:
    host = Capabilities(parse_probe(HOST))
    assert host.skips(TOPOLOGY) == {1: "kernel 6.18.44-fc-v669 lacks PPP (ppp_generic, /dev/ppp)"}
    assert host.missing(t.protocol for t in TOPOLOGY.tunnels) == {
        "ikev2": [], "pptp": ["PPP (ppp_generic, /dev/ppp)"], "wireguard": []
    }
    assert (host.environment.ppp, host.environment.esp, host.environment.wireguard) == (False, False, False)


def test_a_full_kernel_skips_nothing_and_adapts_the_environment() -> None:
    full = Capabilities(parse_probe(FULL))
    assert full.skips(TOPOLOGY) == {}
    assert full.notes(TOPOLOGY) == {}
    assert (full.environment.ppp, full.environment.esp, full.environment.wireguard) == (True, True, True)


def test_a_missing_recommended_feature_is_a_note_for_that_protocol_only() -> None:
    notes = Capabilities(parse_probe(NO_NAT_PPTP)).notes(TOPOLOGY)
    assert list(notes) == ["pptp"]
    assert notes["pptp"].startswith("kernel 6.1.176 lacks PPTP NAT helper (nf_nat_pptp)")


def test_the_plan_is_made_once_and_holds_every_tunnel_in_order() -> None:
    plan = plan_lab(TOPOLOGY, Capabilities(parse_probe(FULL)).environment, FixedSecrets("caps"))
    assert [ctx.tunnel.protocol for ctx in plan.tunnels] == ["wireguard", "pptp", "ikev2"]
    assert [n.name for n in plan.nodes] == ["router", "vpn", "alice"]
    assert plan.nodes is plan.nodes  # rendered once
    assert "/dev/ppp" in plan.node("alice").devices
    assert plan.router.name == "router" and plan.router.lan_if == "lan0"


def test_a_plan_for_checking_holds_no_secrets_and_renders_no_node() -> None:
    plan = plan_lab(TOPOLOGY)
    assert plan.secrets is None and len(plan.tunnels) == 3
    with pytest.raises(RuntimeError, match="for checking only"):
        plan.nodes
