"""The router's ruleset as data, then rendered to iptables-restore input.

Keeping the drops as data (each with the comment it carries in iptables)
lets the tunnel checks name the rule whose counters show it dropped a flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lab.render import render
from lab.router import comments
from lab.router.comments import COMMENT_PREFIX
from lab.router.dialing import dials_out
from lab.router.helpers import CONNTRACK_SYSCTLS, HELPERS, HelperFlow, passthrough_flows
from lab.topology.addressing import AddressPlan
from lab.topology.model import ICMP_TYPES, UPSTREAM_NODE, AllowRule, Router, Topology

if TYPE_CHECKING:  # pragma: no cover
    from lab.protocols.base import Flow, Protocol

ROUTER_NODE = "router"  # the node name (topologies reserve it)
LAN_IF = "lan0"
WAN_IF = "wan0"


@dataclass(frozen=True)
class DropRule:
    comment: str
    proto: str
    port_low: int | None = None
    port_high: int | None = None
    icmp_type: str | None = None  # iptables' name (lab.topology.model.ICMP_TYPES)

    @property
    def match(self) -> str:
        spec = f"-p {self.proto}"
        if self.icmp_type is not None:
            return f"{spec} -m icmp --icmp-type {self.icmp_type}"
        if self.port_low is not None:
            ports = str(self.port_low) if self.port_low == self.port_high else f"{self.port_low}:{self.port_high}"
            spec += f" --dport {ports}"
        return spec


@dataclass(frozen=True)
class RouterPlan:
    """The router node as the lab builds it: its name, interfaces, NAT, helpers, drops, sysctls.

    ``allowed_out`` is None when everything may go out; otherwise the only LAN -> WAN
    traffic accepted (each a rule with its comment), followed by ``strict_drops`` (one
    per known VPN flow not allowed, so each counter names its flow) and a catch-all drop.
    """

    nat: str  # masquerade, masquerade-random-fully or none (lab.topology.model.NatMode)
    lan_if: str
    wan_if: str
    lan: str
    helpers: list[HelperFlow]
    drops: list[DropRule]
    sysctls: dict[str, str] = field(default_factory=dict)
    name: str = ROUTER_NODE
    allowed_out: list[DropRule] | None = None
    strict_drops: list[DropRule] = field(default_factory=list)
    output_drops: list[DropRule] = field(default_factory=list)  # of what the router sends itself
    # helpers for the connections the router starts itself (raw OUTPUT): only when it dials a
    # tunnel (lab.router.dialing) and router.helpers_for has "local"
    local_helpers: list[HelperFlow] = field(default_factory=list)
    # more sources it masquerades besides ``lan``: an upstream router's, the LAN a routing
    # (nat: none) router in front of it forwards un-NATed
    also_masquerades: tuple[str, ...] = ()

    @property
    def masquerades(self) -> bool:
        return self.nat != "none"

    @property
    def masquerade_sources(self) -> tuple[str, ...]:
        return (self.lan, *self.also_masquerades)

    @property
    def nat_comment(self) -> str:
        return comments.NAT_MASQUERADE_RANDOM_FULLY if self.nat == "masquerade-random-fully" else comments.NAT_MASQUERADE

    @property
    def nat_options(self) -> str:
        return " --random-fully" if self.nat == "masquerade-random-fully" else ""


def plan_router(topology: Topology, plan: AddressPlan) -> RouterPlan:
    return plan_section(topology.router, str(plan.lan), ROUTER_NODE, dials=dials_out(topology),
                        moved=moved_flows(topology))


def plan_upstream(topology: Topology, plan: AddressPlan) -> RouterPlan | None:
    """The upstream router (double NAT): the same rules from the ``upstream:`` section, its LAN
    side on the middle segment (None: the topology has no upstream)."""
    if topology.upstream is None or plan.middle is None:
        return None
    routed_lan = (str(plan.lan),) if topology.router.nat == "none" else ()
    return plan_section(topology.upstream, str(plan.middle), UPSTREAM_NODE, routed_lan, moved=moved_flows(topology))


def moved_flows(topology: Topology) -> tuple[Flow, ...]:
    """The flows of the topology's tunnels that their options moved off the protocol's own
    (OpenVPN on TCP 443): a strict router names them in its drops too."""
    from lab.protocols.ports import moved_flows as moved  # the protocols import lab.router.comments

    return tuple(dict.fromkeys(flow for _, flow in moved(topology)))


def plan_section(router: Router, lan: str, name: str, also_masquerades: tuple[str, ...] = (), *,
                 dials: bool = False, moved: tuple[Flow, ...] = ()) -> RouterPlan:
    """One router's plan from its section (``router:`` or ``upstream:``); ``lan``: its inside
    segment; ``dials``: the router starts a tunnel itself (lab.router.dialing); ``moved``: the
    tunnels' flows off their protocol's ports (:func:`moved_flows`)."""
    drops: list[DropRule] = []
    for family, flows in passthrough_flows().items():
        if router.passthrough.get(family, True):
            continue
        for proto, port in flows:
            label = f"{proto}/{port}" if port else proto
            drops.append(DropRule(comments.passthrough_off(family, label), proto, port, port))
    output_drops: list[DropRule] = []
    for block in router.block:
        icmp_type = ICMP_TYPES[block.icmp_type] if block.icmp_type else None
        drops.append(DropRule(comments.block(block.label), block.proto, block.port_low, block.port_high, icmp_type))
        if icmp_type is not None:  # an ICMP error is mostly the router's own: its OUTPUT too
            output_drops.append(DropRule(comments.block_own(block.label), block.proto, icmp_type=icmp_type))

    allowed_out, strict_drops = _strict(router.allow_out, moved)

    flows = [flow for helper in router.helpers for flow in HELPERS[helper].flows]
    sysctls = {"net.ipv4.ip_forward": "1"}
    for key, sysctl in CONNTRACK_SYSCTLS.items():
        value = getattr(router.conntrack, key)
        if value is not None:
            sysctls[sysctl] = str(value)

    return RouterPlan(
        nat=router.nat,
        lan_if=LAN_IF,
        wan_if=WAN_IF,
        lan=lan,
        helpers=flows if "forwarded" in router.helpers_for else [],
        local_helpers=flows if "local" in router.helpers_for and dials else [],
        drops=drops,
        sysctls=sysctls,
        allowed_out=allowed_out,
        strict_drops=strict_drops,
        output_drops=output_drops,
        name=name,
        also_masquerades=also_masquerades if router.masquerades else (),
    )


def _strict(allow_out: list[AllowRule] | None, moved: tuple[Flow, ...]) -> tuple[list[DropRule] | None, list[DropRule]]:
    """The accepts of ``router.allow_out`` and the named drops of every known VPN flow they
    leave out (the registry's flows and the tunnels' ``moved`` ones, once each), so a down
    tunnel's reason can cite its own."""
    if allow_out is None:
        return None, []
    allowed = [DropRule(comments.strict_allowed(rule.label), rule.proto, rule.port_low, rule.port_high) for rule in allow_out]
    named: list[DropRule] = []
    for flow in [f for protocol in _protocols() for f in protocol.flows] + list(moved):
        if any(rule.covers(flow.proto, flow.port) for rule in allow_out):
            continue
        rule = DropRule(comments.strict_not_allowed(flow.label), flow.proto, flow.port, flow.port)
        if rule not in named:
            named.append(rule)
    return allowed, named


def _protocols() -> list[Protocol]:
    from lab.protocols import PROTOCOLS  # the protocols import lab.router.comments

    return list(PROTOCOLS.values())


def render_ruleset(router: RouterPlan) -> str:
    return render(
        "router/rules.v4.j2",
        router=router,
        prefix=COMMENT_PREFIX,
        gre_not_tied=comments.INPUT_GRE_NOT_TIED,
        unsolicited=comments.INPUT_UNSOLICITED,
        default_drop=comments.FORWARD_DEFAULT_DROP,
        strict_not_allowed=comments.STRICT_NOT_ALLOWED,
    )
