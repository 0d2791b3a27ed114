"""Everything the NAT router does: NAT, conntrack helpers, passthrough, blocks, timeouts."""

from lab.router.helpers import HELPERS, passthrough_flows
from lab.router.rules import DropRule, RouterPlan, plan_router, render_ruleset

__all__ = ["HELPERS", "DropRule", "RouterPlan", "plan_router", "passthrough_flows", "render_ruleset"]
