"""Where vpnlab puts things inside a node, and a file to copy there: shared by the plan and the runtime.

Kept free of heavy imports: the runtime (and so ``vpnlab status``) needs these
without loading the protocols, the templates or the topology model.
"""

from __future__ import annotations

from dataclasses import dataclass

LOG_DIR = "/var/log/vpnlab"
RUN_DIR = "/run/vpnlab"
CONF_DIR = "/etc/vpnlab"


@dataclass(frozen=True)
class NodeFile:
    path: str
    content: str
    mode: int = 0o644
