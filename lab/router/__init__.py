"""Everything the NAT router does: NAT, conntrack helpers, passthrough, blocks, timeouts."""

from lab.router.helpers import HELPERS, PASSTHROUGH_FLOWS
from lab.router.rules import DropRule, RouterPlan, plan_router, render_ruleset

__all__ = ["HELPERS", "PASSTHROUGH_FLOWS", "DropRule", "RouterPlan", "plan_router", "render_ruleset"]
