"""The protocol registry: ``PROTOCOLS``, name -> protocol instance, in registration order.

A protocol is one class (a :class:`~lab.protocols.base.Protocol` subclass declaring its
facts as ClassVars, with its methods), its templates (built in: under
``lab/templates/<name>/``; a plugin: a template folder of its own), and one line that
registers it: ``register(MyProtocol())`` below for a built-in one, or an entry point in
the group ``vpnlab.protocols`` for a third-party package::

    [project.entry-points."vpnlab.protocols"]
    sstp = "vpnlab_sstp:Sstp"

Entry points are loaded on the first read of ``PROTOCOLS`` (once). Everything else derives
from the registry: topology validation, the router's passthrough switches, ``vpnlab doctor``,
the kernel modules of a User-Mode Linux guest. See docs/dev/adding-a-protocol.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping

from lab.errors import VpnlabError
from lab.protocols.base import Flow, Listen, NodeFile, Protocol, ServerContext, TunnelContext
from lab.protocols.ikev2 import Ikev2
from lab.protocols.l2tp import L2tp
from lab.protocols.l2tp_ipsec import L2tpIpsec
from lab.protocols.openvpn import OpenVpnTcp, OpenVpnUdp
from lab.protocols.pptp import Pptp
from lab.protocols.wireguard import WireGuard

ENTRY_POINT_GROUP = "vpnlab.protocols"
MAX_INTERFACE_PREFIX = 13  # Linux interface names have 15 characters; the server index follows


class ProtocolError(VpnlabError):
    """A protocol that cannot be registered: bad or conflicting facts, or a broken plugin."""


class Registry(Mapping[str, Protocol]):
    """name -> protocol; third-party protocols (entry points) are loaded on the first read."""

    def __init__(self) -> None:
        self._protocols: dict[str, Protocol] = {}
        self._plugins_loaded = False
        self._plugin_error: ProtocolError | None = None

    def _load_plugins(self) -> None:
        if self._plugin_error is not None:
            raise self._plugin_error
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # before loading: a plugin may read the registry
        from importlib.metadata import entry_points

        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = entry.load()
                protocol = loaded() if isinstance(loaded, type) else loaded
                self.add(protocol)
            except Exception as exc:  # any failure of third-party code: one clear error naming it
                self._plugin_error = ProtocolError(
                    f"protocol plugin '{entry.name}' ({entry.value}, entry point group {ENTRY_POINT_GROUP}) "
                    f"cannot be loaded: {exc}",
                    hint="fix or uninstall the package that provides it",
                )
                raise self._plugin_error from exc

    def __getitem__(self, name: str) -> Protocol:
        self._load_plugins()
        return self._protocols[name]

    def __iter__(self) -> Iterator[str]:
        self._load_plugins()
        return iter(list(self._protocols))

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._protocols)

    def add(self, protocol: Protocol) -> None:
        problems = protocol_problems(protocol, list(self._protocols.values()))
        if problems:
            name = getattr(protocol, "name", type(protocol).__name__)
            raise ProtocolError(f"protocol '{name}' cannot be registered: " + "; ".join(problems))
        self._protocols[protocol.name] = protocol

    def remove(self, name: str) -> None:
        del self._protocols[name]


def protocol_problems(protocol: object, others: list[Protocol]) -> list[str]:
    """What is wrong with a protocol's declared facts, alone and next to the ``others``."""
    if not isinstance(protocol, Protocol):
        return [f"{protocol!r} is not a lab.protocols.base.Protocol"]
    problems = []
    for attr in ("name", "tunnel_net", "interface_prefix", "flows"):
        if not hasattr(protocol, attr):
            problems.append(f"{attr} is not declared")
    if problems:
        return problems
    net, prefix = protocol.tunnel_net, protocol.interface_prefix
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 16 or not net.is_private:
        problems.append(f"tunnel_net {net} must be a private IPv4Network of at least a /16")
    if not prefix or len(prefix) > MAX_INTERFACE_PREFIX:
        problems.append(f"interface_prefix '{prefix}' must have 1 to {MAX_INTERFACE_PREFIX} characters")
    if not all(isinstance(f, Flow) for f in protocol.flows) or not protocol.flows:
        problems.append("flows must be a non-empty tuple of Flow")
    if not all(isinstance(x, Listen) and x.proto in ("tcp", "udp") and 0 < x.port < 65536 for x in protocol.listens):
        problems.append("listens must be Listen('tcp'|'udp', port 1-65535)")
    for other in others:
        if other.name == protocol.name:
            problems.append("the name is registered already")
        if isinstance(net, ipaddress.IPv4Network) and net.overlaps(other.tunnel_net):
            problems.append(f"tunnel_net {net} overlaps {other.name}'s {other.tunnel_net}")
        if other.interface_prefix == prefix:
            problems.append(f"interface_prefix '{prefix}' is {other.name}'s")
    return problems


PROTOCOLS = Registry()


def register(protocol: Protocol) -> Protocol:
    """Add a protocol to the registry (a ProtocolError says what conflicts)."""
    PROTOCOLS.add(protocol)
    return protocol


def unregister(name: str) -> None:
    """Remove a protocol (for tests that register a throw-away one)."""
    PROTOCOLS.remove(name)


def passthrough_families() -> list[str]:
    """The router's passthrough switches: the families the protocols declare, in registry order."""
    return list(dict.fromkeys(p.family for p in PROTOCOLS.values() if p.family is not None))


register(WireGuard())
register(OpenVpnUdp())
register(OpenVpnTcp())
register(Pptp())
register(L2tp())
register(L2tpIpsec())
register(Ikev2())

__all__ = [
    "PROTOCOLS",
    "Flow",
    "Listen",
    "NodeFile",
    "Protocol",
    "ProtocolError",
    "ServerContext",
    "TunnelContext",
    "passthrough_families",
    "register",
    "unregister",
]
