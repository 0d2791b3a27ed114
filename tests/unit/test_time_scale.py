"""A slow runtime (the User-Mode Linux guest) multiplies the tunnels' deadlines; the up-check's
script, its host-side bound and its reasons all say the multiplied time."""

from __future__ import annotations

from dataclasses import replace

from lab.check.run import check_seconds
from lab.check.scripts import deadline, deadline_words, tunnel_files
from lab.plan import plan_lab
from lab.protocols.base import Environment
from lab.runtime.host import HostRuntime
from lab.runtime.uml_runtime import UmlRuntime
from lab.topology import parse_topology

TOPOLOGY = parse_topology(
    """
name: scaled
servers: [{name: vpn, protocols: [l2tp, wireguard]}]
clients: [{name: alice}]
tunnels:
  - {client: alice, server: vpn, protocol: l2tp}
  - {client: alice, server: vpn, protocol: wireguard, deadline: 7}
"""
)
SLOW = Environment(ppp=True, esp=True, time_scale=2.0, runtime="uml")


def test_the_uml_runtime_is_the_slow_one() -> None:
    assert HostRuntime.time_scale == 1.0 and UmlRuntime.time_scale > 1.0


def test_deadlines_are_multiplied_and_the_reasons_say_by_what() -> None:
    l2tp, wireguard = plan_lab(TOPOLOGY, SLOW).tunnels
    assert deadline(l2tp) == 40.0 and deadline(wireguard) == 14.0
    assert deadline_words(l2tp) == "40 s (20 s times 2 on the uml runtime)"
    assert check_seconds(deadline(l2tp)) > 40.0
    script = next(f.content for f in tunnel_files(l2tp) if f.path.endswith("/check.sh"))
    assert '-ge 40000 ]' in script and "within 40 s (20 s times 2 on the uml runtime)" in script


def test_an_ordinary_host_keeps_the_deadlines_as_written() -> None:
    l2tp, wireguard = plan_lab(TOPOLOGY, replace(SLOW, time_scale=1.0, runtime="docker")).tunnels
    assert (deadline(l2tp), deadline(wireguard)) == (20.0, 7.0)
    assert deadline_words(wireguard) == "7 s"
