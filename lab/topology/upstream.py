"""Double NAT: an ``upstream:`` router between the router's WAN side and the servers.

A home router behind an ISP's box, or behind carrier-grade NAT, is NATed twice: the
router masquerades the LAN onto the *middle* segment (``network.middle``), the upstream
router (node ``isp``) masquerades the middle onto the WAN where the servers are. The
``upstream:`` section takes the keys of ``router:`` (the same model, the same rules code);
this module holds what relates the segments to one another.

Real CGNAT uses the shared address space 100.64.0.0/10 (RFC 6598) for the middle; the lab
keeps to the documentation ranges instead (docs/scenarios.md, scenario 4): the middle
defaults to 198.51.100.0/24, beside the WAN's 203.0.113.0/24, and must stay clear of it.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lab.topology.model import Topology

DEFAULT_MIDDLE = ipaddress.IPv4Network("198.51.100.0/24")

Location = tuple[Any, ...]


def middle_network(topology: Topology) -> ipaddress.IPv4Network | None:
    """The segment between the two routers (None: the topology has no upstream)."""
    if topology.upstream is None:
        return None
    return topology.network.middle or DEFAULT_MIDDLE


def segment_problems(topology: Topology) -> list[tuple[Location, str]]:
    """(location, message) for a middle segment that has no upstream router, or one that
    overlaps another segment (its default included: then the message says to set it)."""
    network = topology.network
    if topology.upstream is None:
        if network.middle is not None:
            return [(("network", "middle"), "a middle segment goes only with an upstream: router (double NAT); "
                                            "add upstream: or remove network.middle")]
        return []
    middle = middle_network(topology)
    assert middle is not None
    given = "" if network.middle is not None else " (the default, as network.middle is not set)"
    problems = []
    for name, other in (("lan", network.lan), ("wan", network.wan)):
        if middle.overlaps(other):
            problems.append((("network", "middle"), f"{middle}{given} overlaps network.{name} {other}: the segments must "
                                                    "be apart (set network.middle to a part of 203.0.113.0/24 or "
                                                    "198.51.100.0/24 that the WAN does not use)"))
    return problems
