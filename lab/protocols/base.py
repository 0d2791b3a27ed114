"""What every VPN protocol provides: its facts as data, configs, start commands, diagnosis.

A protocol is one class. Its facts are ClassVars (see :class:`Protocol`), from which
the rest of vpnlab derives what used to be listed by hand: topology validation (names,
port clashes), the router's passthrough switches and drops, the kernel verdicts of
``vpnlab doctor``, the modules a User-Mode Linux guest loads, the tunnel addresses.

Its methods are pure: they render files and shell commands from the topology and
the lab's credentials. The runtime copies the files into the nodes and runs the
commands; ``lab.check`` turns what it saw into a verdict and an :class:`~lab.check.evidence.Evidence`
that the protocol's ``diagnose`` reads.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from lab.credentials import LabSecrets
from lab.kernel.needs import Need
from lab.router.dialing import ROUTER_CLIENT
from lab.topology.addressing import AddressPlan
from lab.topology.model import Topology, Tunnel

if TYPE_CHECKING:  # pragma: no cover
    from lab.check.evidence import Evidence

from lab.node_files import CONF_DIR, LOG_DIR, RUN_DIR, NodeFile


@dataclass(frozen=True)
class Flow:
    """Traffic a client sends to a server: an IP protocol and, for TCP/UDP, a port."""

    proto: str
    port: int | None = None

    @property
    def label(self) -> str:
        return f"{self.proto}/{self.port}" if self.port else self.proto


@dataclass(frozen=True)
class Listen:
    """A port a protocol's server listens on. Two protocols on one server may not listen on
    the same port, unless both name the same ``shared_by`` daemon (one charon serves both)."""

    proto: str  # tcp or udp
    port: int
    shared_by: str | None = None

    @property
    def label(self) -> str:
        return f"{self.proto}/{self.port}"


@dataclass(frozen=True)
class Environment:
    """What the kernel under the lab offers, as far as configs must adapt to it."""

    ppp: bool = False  # /dev/ppp can be passed to nodes
    esp: bool = False  # kernel ESP; otherwise IPsec runs through strongSwan's kernel-libipsec
    wireguard: bool = False  # kernel WireGuard; otherwise wireguard-go
    time_scale: float = 1.0  # the runtime's (lab.runtime.base.Runtime.time_scale): deadlines are multiplied by it
    runtime: str = ""  # the runtime's name, for the reasons that mention time_scale


@dataclass(frozen=True)
class ServerContext:
    topology: Topology
    plan: AddressPlan
    server: str
    secrets: LabSecrets
    environment: Environment = field(default_factory=Environment)

    @property
    def wan_address(self) -> ipaddress.IPv4Address:
        return self.plan.servers[self.server]

    def tunnels(self, protocol: str) -> list[Tunnel]:
        return [t for t in self.topology.tunnels if t.server == self.server and t.protocol == protocol]


@dataclass(frozen=True)
class TunnelContext:
    topology: Topology
    plan: AddressPlan
    tunnel: Tunnel
    secrets: LabSecrets | None  # None in a plan made only to check a running lab (nothing is rendered)
    environment: Environment = field(default_factory=Environment)

    @property
    def server_wan(self) -> ipaddress.IPv4Address:
        return self.plan.servers[self.tunnel.server]

    @property
    def client_lan(self) -> ipaddress.IPv4Address:
        """The address the client's packets leave from, as the router sees them: a LAN client's,
        or the router's own WAN address when the router dials (lab.router.dialing)."""
        if self.tunnel.client == ROUTER_CLIENT:
            return self.plan.router_wan
        return self.plan.clients[self.tunnel.client]

    @property
    def log_path(self) -> str:
        return f"{LOG_DIR}/{self.tunnel.protocol}-{self.tunnel.server}.log"

    @property
    def attempt_path(self) -> str:
        """Exists once the tunnel was started: a second check ends that attempt first."""
        return f"{RUN_DIR}/attempt-{self.tunnel.id}"

    @property
    def blocked_path(self) -> str:
        """The host's note that the router drops this attempt's packets (lab.check.blocked)."""
        return f"{self.attempt_path}.blocked"

    def mark_path(self, log: str) -> str:
        """Where the up-check keeps ``log``'s line count at the start of this attempt."""
        return f"{self.attempt_path}.{log.rsplit('/', 1)[-1]}.line"

    def since_attempt(self, log: str) -> str:
        """Shell printing the lines of a shared log (one of client_shared_logs) written since
        this attempt started: evidence never quotes an earlier check's lines."""
        return f"tail -n +$(( $(cat {self.mark_path(log)} 2>/dev/null || echo 0) + 1 )) {log}"


class Protocol:
    """One VPN protocol. Subclasses declare these facts as data; vpnlab derives the rest.

    - ``name``: the name topologies use (``servers[].protocols``, ``tunnels[].protocol``).
    - ``tunnel_net``: a network of its own, at most a /16 and unique among protocols; server
      number S (its index in the topology) gets the S-th /24 of it, and owns .1.
    - ``interface_prefix``: client interfaces are ``<prefix><server index>`` (unique; at most
      13 characters: Linux names have 15).
    - ``deadline``: seconds the up-check waits by default.
    - ``flows``: what a client sends to a server through the router (router evidence, drops).
    - ``family``: the router passthrough switch it depends on (``router.passthrough.<family>``),
      or None; a family forwards the union of its protocols' flows.
    - ``listens``: the server's ports (:class:`Listen`), to refuse two protocols on one
      server that would take the same port.
    - ``options``: the names of the tunnel ``options`` it takes (``option_problems`` checks
      their values); a tunnel giving it any other is refused, naming these.
    - ``kernel_needs``: :class:`~lab.kernel.needs.Need` s (each a list of alternatives, the
      first available wins) that ``vpnlab doctor`` and the lab's skips check.
    - ``kernel_recommended``: (feature, why) pairs not needed to come up, but a lab case needs.
    - ``guest_modules``: kernel modules a User-Mode Linux guest loads at boot for it.
    - ``guest_warmup``: shell commands a guest runs once at boot, after its modules, so that
      no tunnel pays for the kernel's on-demand work (each module the kernel asks for there
      costs a process start, ~0.3 s; the first ESP SA asked for about twenty).
    - ``needs_ppp``: nodes get /dev/ppp (where the kernel has PPP).
    """

    name: ClassVar[str]
    tunnel_net: ClassVar[ipaddress.IPv4Network]
    interface_prefix: ClassVar[str]
    deadline: ClassVar[float] = 15.0
    flows: ClassVar[tuple[Flow, ...]]
    family: ClassVar[str | None] = None
    listens: ClassVar[tuple[Listen, ...]] = ()
    options: ClassVar[tuple[str, ...]] = ()  # the tunnel options it takes; any other is refused
    kernel_needs: ClassVar[tuple[Need, ...]] = ()
    kernel_recommended: ClassVar[tuple[tuple[str, str], ...]] = ()
    guest_modules: ClassVar[tuple[str, ...]] = ()
    guest_warmup: ClassVar[tuple[str, ...]] = ()
    needs_ppp: ClassVar[bool] = False

    def client_interface(self, ctx: TunnelContext) -> str:
        return f"{self.interface_prefix}{ctx.plan.server_index[ctx.tunnel.server]}"

    def server_interface(self) -> str:
        return f"{self.interface_prefix}0"

    def tunnel_subnet(self, plan: AddressPlan, server: str) -> ipaddress.IPv4Network:
        return plan.tunnel_subnet(self.tunnel_net, server)

    def server_tunnel_address(self, plan: AddressPlan, server: str) -> ipaddress.IPv4Address:
        return plan.tunnel_server_address(self.tunnel_net, server)

    def client_tunnel_address(self, plan: AddressPlan, server: str, client: str) -> ipaddress.IPv4Address:
        return plan.tunnel_client_address(self.tunnel_net, server, client)

    def server_files(self, ctx: ServerContext) -> list[NodeFile]:
        raise NotImplementedError

    def server_start(self, ctx: ServerContext) -> list[str]:
        raise NotImplementedError

    def server_log(self) -> str:
        return f"{LOG_DIR}/{self.name}-server.log"

    def client_files(self, ctx: TunnelContext) -> list[NodeFile]:
        raise NotImplementedError

    def client_start(self, ctx: TunnelContext) -> list[str]:
        raise NotImplementedError

    def client_stop(self, ctx: TunnelContext) -> list[str]:
        """Shell lines ending a previous attempt of this tunnel on the client, run by a second
        check before anything else (and before the tunnel's log is emptied): its daemon gone,
        its interface released. The up-check offers ``stop_pid PIDFILE [IFACE]``. Each line
        may fail harmlessly (nothing of the attempt left)."""
        return []

    def client_shared_logs(self, ctx: TunnelContext) -> tuple[str, ...]:
        """Client logs that other tunnels or earlier attempts also write (the tunnel's own
        ``ctx.log_path`` starts empty at each attempt): the up-check notes where each ends,
        and evidence reads them with ``ctx.since_attempt(log)``."""
        return ()

    # Shown in the up-check's "down" message when ping_source() gave no address in time.
    ping_source_note: ClassVar[str] = ""

    def ping_source(self, ctx: TunnelContext) -> str | None:
        """A tunnel with no interface of its own to ping through (policy-based IPsec) names
        the ping's source instead: a shell command printing it (empty while not ready)."""
        return None

    def deadline_for(self, ctx: TunnelContext) -> float:
        """Seconds the up-check waits for this tunnel: the tunnel's own deadline or the
        protocol's, times the runtime's ``time_scale``."""
        return (ctx.tunnel.deadline or self.deadline) * ctx.environment.time_scale

    def still_trying(self, ctx: TunnelContext) -> tuple[str, str] | None:
        """(daemon, shell test): the up-check stops waiting as soon as the test fails (the
        client's daemon has given up), before the deadline. The test runs at every poll: the
        check script's ``alive PIDFILE...`` tests pid files without starting a process."""
        return None

    def tunnel_flows(self, options: dict[str, str | int | bool]) -> tuple[Flow, ...]:
        """The flows of one tunnel with these (validated) ``options``: ``flows``, unless an
        option moves them (OpenVPN's ``port``). Rules, drops and evidence all match these."""
        return self.flows

    def tunnel_listens(self, options: dict[str, str | int | bool]) -> tuple[Listen, ...]:
        """The server's ports for a tunnel with these ``options``: ``listens`` unless moved."""
        return self.listens

    def option_problems(self, options: dict[str, str | int | bool]) -> dict[str, str]:
        """What is wrong with a tunnel's ``options`` for this protocol, by option name
        (checked when the topology is read)."""
        return {}

    def client_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        """Extra commands whose output is kept as evidence, by name."""
        return {}

    def server_evidence(self, ctx: TunnelContext) -> dict[str, str]:
        """Commands run on the server after a check, by name (their output is evidence)."""
        return {"log": f"tail -n 20 {self.server_log()}"}

    def diagnose(self, evidence: Evidence) -> list[str]:
        """Facts that explain the verdict, read from the evidence: the client's sections
        (``evidence.client``: 'client log' and those of client_evidence), the server's
        (``evidence.server``: those of server_evidence) and the router's conntrack entries
        and rule counters (``evidence.router``)."""
        return []


# What a protocol module imports from here (the node paths and NodeFile live in lab.node_files).
__all__ = [
    "CONF_DIR",
    "Environment",
    "Flow",
    "LOG_DIR",
    "Listen",
    "NodeFile",
    "Protocol",
    "RUN_DIR",
    "ServerContext",
    "TunnelContext",
]
