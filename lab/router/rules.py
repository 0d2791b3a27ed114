"""The router's ruleset as data, then rendered to iptables-restore input.

Keeping the drops as data (each with the comment it carries in iptables)
lets the tunnel checks name the rule whose counters show it dropped a flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.render import render
from lab.router import comments
from lab.router.comments import COMMENT_PREFIX
from lab.router.helpers import CONNTRACK_SYSCTLS, HELPERS, HelperFlow, passthrough_flows
from lab.topology.addressing import AddressPlan
from lab.topology.model import Topology

ROUTER_NODE = "router"  # the node name (topologies reserve it)
LAN_IF = "lan0"
WAN_IF = "wan0"


@dataclass(frozen=True)
class DropRule:
    comment: str
    proto: str
    port_low: int | None = None
    port_high: int | None = None

    @property
    def match(self) -> str:
        spec = f"-p {self.proto}"
        if self.port_low is not None:
            ports = str(self.port_low) if self.port_low == self.port_high else f"{self.port_low}:{self.port_high}"
            spec += f" --dport {ports}"
        return spec


@dataclass(frozen=True)
class RouterPlan:
    """The router node as the lab builds it: its name, interfaces, NAT, helpers, drops, sysctls."""

    nat: str
    lan_if: str
    wan_if: str
    lan: str
    helpers: list[HelperFlow]
    drops: list[DropRule]
    sysctls: dict[str, str] = field(default_factory=dict)
    name: str = ROUTER_NODE


def plan_router(topology: Topology, plan: AddressPlan) -> RouterPlan:
    router = topology.router
    drops: list[DropRule] = []
    for family, flows in passthrough_flows().items():
        if router.passthrough.get(family, True):
            continue
        for proto, port in flows:
            label = f"{proto}/{port}" if port else proto
            drops.append(DropRule(comments.passthrough_off(family, label), proto, port, port))
    for block in router.block:
        drops.append(DropRule(comments.block(block.label), block.proto, block.port_low, block.port_high))

    sysctls = {"net.ipv4.ip_forward": "1"}
    for key, sysctl in CONNTRACK_SYSCTLS.items():
        value = getattr(router.conntrack, key)
        if value is not None:
            sysctls[sysctl] = str(value)

    return RouterPlan(
        nat=router.nat,
        lan_if=LAN_IF,
        wan_if=WAN_IF,
        lan=str(plan.lan),
        helpers=[flow for name in router.helpers for flow in HELPERS[name].flows],
        drops=drops,
        sysctls=sysctls,
    )


def render_ruleset(router: RouterPlan) -> str:
    return render("router/rules.v4.j2", router=router, prefix=COMMENT_PREFIX, gre_not_tied=comments.INPUT_GRE_NOT_TIED)
