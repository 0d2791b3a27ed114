"""Pydantic models of a topology file; knows nothing about Docker.

Field-level checks live on the models; checks that relate several parts
(a tunnel naming an unknown client) live in ``lab.topology.load`` so that
every problem is collected and reported at once.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# for the scenario-steps block at the end of Topology
from pydantic import ValidationError, ValidationInfo, ValidatorFunctionWrapHandler
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from lab.steps.model import Step, step_problems
from lab.topology.links import LinkConditions, RouterLinks
from lab.quoting import quoted

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,23}")  # always fullmatch: "$" would let a trailing newline through
NAME_RULE = "lowercase letters, digits and '-', starting with a letter, at most 24 characters"
RESERVED_NODE_NAMES = {"router", "switch"}
STUN_NODE = "stun"  # the NAT probe's STUN server, reserved when a topology says nat_probe: true
UPSTREAM_NODE = "isp"  # the upstream router (double NAT), reserved when a topology has upstream:

BLOCK_PROTOCOLS = {"gre": 47, "esp": 50, "ah": 51, "icmp": 1}
PORT_PROTOCOLS = ("tcp", "udp")
BLOCK_RE = re.compile(r"(tcp|udp)/(\d{1,5})(?:-(\d{1,5}))?")  # always fullmatch
BLOCK_RULE = "'tcp/PORT', 'udp/PORT', 'udp/LOW-HIGH' or one of: " + ", ".join(sorted(BLOCK_PROTOCOLS))
# ICMP types a block rule may name: "fragmentation needed" (type 3 code 4), the message path-MTU
# discovery lives on; a firewall dropping it makes a path-MTU black hole (docs/scenarios.md)
ICMP_TYPES = {"frag-needed": "fragmentation-needed"}  # as written -> iptables' name

DOCUMENTATION_NETS = [ipaddress.ip_network(n) for n in ("203.0.113.0/24", "198.51.100.0/24")]
# The LAN lies in RFC 1918 space: Python's is_private also says yes to loopback, 0.0.0.0/8,
# link-local, reserved and the documentation ranges (the WAN's), none of which a LAN can be.
LAN_NETS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
LAN_RULE = "the LAN must be a /16 to /26 inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (for example 192.168.100.0/24)"
def special_range(net: ipaddress.IPv4Network) -> str:
    """What a network that no LAN may use is, for the message ("" if nothing special)."""
    if any(net.overlaps(doc) for doc in DOCUMENTATION_NETS):
        return "in a documentation range, where the WAN lives"
    kinds = [
        ("loopback", net.is_loopback), ("in 0.0.0.0/8 ('this network')", net.subnet_of(ipaddress.IPv4Network("0.0.0.0/8"))),
        ("link-local", net.is_link_local), ("multicast", net.is_multicast), ("reserved", net.is_reserved),
    ]
    return next((kind for kind, matches in kinds if matches), "")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"'{quoted(value)}' is not a valid name ({NAME_RULE})")
    return value


Name = Annotated[str, AfterValidator(check_name)]


def passthrough_family(value: str) -> str:
    """A key of ``router.passthrough``: a family some registered protocol declares."""
    from lab.protocols import passthrough_families  # the protocols import this module

    known = passthrough_families()
    if value not in known:
        raise ValueError(f"unknown passthrough family '{quoted(value)}' (known: {', '.join(known)})")
    return value


def every_family(switches: dict[str, bool]) -> dict[str, bool]:
    """All families, in registry order, on unless switched off."""
    from lab.protocols import passthrough_families

    return {family: switches.get(family, True) for family in passthrough_families()}


# What the router forwards for each legacy VPN family (vendors' toggles): family -> on.
Passthrough = Annotated[dict[Annotated[str, AfterValidator(passthrough_family)], bool], AfterValidator(every_family)]


class Conntrack(Strict):
    """Conntrack timeouts in seconds, applied in the router's network namespace."""

    udp_timeout: int | None = Field(default=None, ge=1, le=86400)
    udp_stream_timeout: int | None = Field(default=None, ge=1, le=86400)
    tcp_timeout_established: int | None = Field(default=None, ge=1, le=864000)
    gre_timeout: int | None = Field(default=None, ge=1, le=86400)
    gre_stream_timeout: int | None = Field(default=None, ge=1, le=86400)


class BlockRule(Strict):
    """One extra drop in the router's forward path."""

    KIND: ClassVar[str] = "a block rule"  # how an error names it

    proto: str
    port_low: int | None = None
    port_high: int | None = None
    icmp_type: Literal["frag-needed"] | None = None  # with proto icmp only: one ICMP type, not all

    @model_validator(mode="before")
    @classmethod
    def from_text(cls, value: object) -> object:
        if isinstance(value, str):
            return cls.parse_fields(value)
        if isinstance(value, (int, float)):
            raise ValueError(f"'{quoted(value)}' is not {cls.KIND} (allowed: {BLOCK_RULE})")
        if isinstance(value, dict):
            return cls.check_fields(value)
        return value

    @classmethod
    def parse(cls, text: str) -> BlockRule:
        return cls(**cls.parse_fields(text))

    @classmethod
    def parse_fields(cls, text: str) -> dict[str, object]:
        text = text.strip().lower()
        if text in BLOCK_PROTOCOLS:
            return {"proto": text}
        if text.startswith("icmp/"):
            if text[len("icmp/"):] in ICMP_TYPES:
                return {"proto": "icmp", "icmp_type": text[len("icmp/"):]}
            raise ValueError(f"'{quoted(text)}' is not {cls.KIND}: the ICMP type known is "
                             + ", ".join(f"'icmp/{t}'" for t in ICMP_TYPES) + " ('icmp' alone: all of ICMP)")
        match = BLOCK_RE.fullmatch(text)
        if not match:
            raise ValueError(f"'{quoted(text)}' is not {cls.KIND} (allowed: {BLOCK_RULE})")
        low = int(match.group(2))
        high = int(match.group(3) or low)
        if not (1 <= low <= high <= 65535):
            raise ValueError(f"'{text}': ports must be 1-65535 and LOW <= HIGH")
        return {"proto": match.group(1), "port_low": low, "port_high": high}

    @classmethod
    def check_fields(cls, fields: dict[object, object]) -> dict[object, object]:
        """The mapping form ``{proto, port_low, port_high}`` (how a kept topology is read back):
        the same rules as the text form, since both end up in the router's iptables rules."""
        proto, low, high = fields.get("proto"), fields.get("port_low"), fields.get("port_high")
        allowed = ", ".join([*PORT_PROTOCOLS, *sorted(BLOCK_PROTOCOLS)])
        if not isinstance(proto, str) or (proto not in BLOCK_PROTOCOLS and proto not in PORT_PROTOCOLS):
            raise ValueError(f"proto '{quoted(proto)}' is not allowed in {cls.KIND} (allowed: {allowed})")
        icmp_type = fields.get("icmp_type")
        if icmp_type is not None and (proto != "icmp" or icmp_type not in ICMP_TYPES):
            raise ValueError(f"icmp_type '{quoted(icmp_type)}' goes only with proto icmp and is one of: {', '.join(ICMP_TYPES)}")
        for port in (low, high):
            if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
                raise ValueError(f"port '{quoted(port)}' in {cls.KIND} must be a whole number 1-65535")
        if proto in BLOCK_PROTOCOLS:
            if low is not None or high is not None:
                raise ValueError(f"'{proto}' has no ports: port_low and port_high go only with tcp or udp")
            return fields
        if low is None:
            raise ValueError(f"'{proto}' needs port_low (and port_high for a range), or write it as '{proto}/PORT'")
        high = low if high is None else high
        if not (1 <= low <= high <= 65535):
            ports = quoted(low) if low == high else f"{quoted(low)}-{quoted(high)}"
            raise ValueError(f"'{proto}/{ports}': ports must be 1-65535 and LOW <= HIGH")
        return {**fields, "port_high": high}

    @property
    def label(self) -> str:
        if self.icmp_type is not None:
            return f"{self.proto}/{self.icmp_type}"
        if self.port_low is None:
            return self.proto
        if self.port_low == self.port_high:
            return f"{self.proto}/{self.port_low}"
        return f"{self.proto}/{self.port_low}-{self.port_high}"

    def covers(self, proto: str, port: int | None) -> bool:
        """Whether this rule matches all of a flow (port None: the whole IP protocol)."""
        if self.proto != proto or self.icmp_type is not None:  # one ICMP type is no whole flow
            return False
        if self.port_low is None:
            return True
        return port is not None and self.port_low <= port <= (self.port_high or self.port_low)


class AllowRule(BlockRule):
    """One kind of traffic a strict router lets out (same syntax as a block rule)."""

    KIND: ClassVar[str] = "an allow_out rule"

    @model_validator(mode="after")
    def whole_protocols(self) -> AllowRule:
        if self.icmp_type is not None:
            raise ValueError(f"'{self.label}' is a block rule only: allow_out takes 'icmp' whole")
        return self


# router.nat: "masquerade-random-fully" is MASQUERADE --random-fully (a random source port
# per new mapping instead of keeping the client's port: endpoint-dependent, "symmetric" NAT)
NatMode = Literal["masquerade", "masquerade-random-fully", "none"]
# router.helpers_for: "forwarded" (raw PREROUTING: what the LAN starts), "local" (raw OUTPUT: what the
# router starts itself). [forwarded] alone is OpenWrt's firewall bug (lab.router.dialing).
HelperTraffic = Literal["forwarded", "local"]


class Router(Strict):
    nat: NatMode = "masquerade"
    helpers: list[str] = Field(default_factory=list)
    helpers_for: list[HelperTraffic] = Field(default_factory=lambda: ["forwarded", "local"])
    passthrough: Passthrough = Field(default_factory=lambda: every_family({}), validate_default=True)
    block: list[BlockRule] = Field(default_factory=list)
    # None: everything may go out (LAN -> WAN); a list: only these (a guest or hotel network)
    allow_out: list[AllowRule] | None = None
    conntrack: Conntrack = Field(default_factory=Conntrack)
    links: RouterLinks = Field(default_factory=RouterLinks)  # lan0 and wan0 (lab.topology.links)

    @property
    def masquerades(self) -> bool:
        return self.nat != "none"

    @field_validator("helpers")
    @classmethod
    def unique_helpers(cls, value: list[str]) -> list[str]:
        seen = set()
        for helper in value:
            if helper in seen:
                raise ValueError(f"helper '{helper}' is listed twice")
            seen.add(helper)
        return value

    @field_validator("helpers_for")
    @classmethod
    def traffic_named_once(cls, value: list[HelperTraffic]) -> list[HelperTraffic]:
        if not value:
            raise ValueError("name forwarded, local or both (to attach no helper at all, leave helpers empty)")
        if twice := next((traffic for i, traffic in enumerate(value) if traffic in value[:i]), None):
            raise ValueError(f"'{twice}' is listed twice")
        return value


class Network(Strict):
    """The segments; all stay inside the lab."""

    lan: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.100.0/24")
    wan: ipaddress.IPv4Network = ipaddress.IPv4Network("203.0.113.0/24")
    # Between the router and the upstream router (double NAT, lab.topology.upstream); None:
    # 198.51.100.0/24 when the topology has an upstream:, no segment when it has none
    middle: ipaddress.IPv4Network | None = None

    @field_validator("lan")
    @classmethod
    def private_lan(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        from lab.protocols import PROTOCOLS  # the protocols import this module

        if not any(value.subnet_of(net) for net in LAN_NETS) or value.prefixlen > 26 or value.prefixlen < 16:
            what = special_range(value)
            raise ValueError(f"{value}{f' is {what}' if what else ''}: {LAN_RULE}")
        for protocol in PROTOCOLS.values():
            if value.overlaps(protocol.tunnel_net):
                raise ValueError(
                    f"{value} overlaps {protocol.name}'s tunnel network {protocol.tunnel_net}: "
                    "choose a LAN clear of every protocol's tunnel network (for example 192.168.100.0/24)"
                )
        return value

    @field_validator("wan", "middle")
    @classmethod
    def documentation_wan(cls, value: ipaddress.IPv4Network | None, info: ValidationInfo) -> ipaddress.IPv4Network | None:
        if value is not None and (not any(value.subnet_of(net) for net in DOCUMENTATION_NETS) or value.prefixlen > 26):
            what = "WAN" if info.field_name == "wan" else "middle segment (CGNAT's 100.64.0.0/10 in the real world)"
            raise ValueError(
                f"{value}: the {what} must lie in a documentation range (203.0.113.0/24 or 198.51.100.0/24)"
            )
        return value


class Server(Strict):
    name: Name
    protocols: list[str] = Field(min_length=1)
    link: LinkConditions = Field(default_factory=LinkConditions)  # its eth0 on the WAN


class Client(Strict):
    name: Name
    link: LinkConditions = Field(default_factory=LinkConditions)  # its eth0 on the LAN


class Tunnel(Strict):
    client: str
    server: str
    protocol: str
    expect: Literal["up", "down"] = "up"
    deadline: float | None = Field(default=None, gt=0, le=120)
    options: dict[str, str | int | bool] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.client}-{self.protocol}-{self.server}"


class Topology(Strict):
    name: Name
    description: str = ""
    router: Router = Field(default_factory=Router)
    network: Network = Field(default_factory=Network)
    servers: list[Server] = Field(min_length=1, max_length=50)
    clients: list[Client] = Field(min_length=1, max_length=200)
    tunnels: list[Tunnel] = Field(default_factory=list)
    # Adds the "stun" node (coturn, two WAN addresses) so the router's NAT behaviour is
    # measured with an RFC 5780 probe (lab.natprobe); off by default: it costs a node.
    nat_probe: bool = False
    # A second NAT router between the router's WAN side and the servers (an ISP box, CGNAT):
    # the same keys as router:, checked by lab.topology.upstream; None: the servers' segment
    # is the router's WAN, as ever
    upstream: Router | None = None

    @model_validator(mode="after")
    def segments_apart(self) -> Topology:
        from lab.topology.upstream import segment_problems  # it imports this module

        _raise_located([(loc, message, "value_error") for loc, message in segment_problems(self)], self)
        return self

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    def client(self, name: str) -> Client:
        return next(c for c in self.clients if c.name == name)

    def server_index(self, name: str) -> int:
        return [s.name for s in self.servers].index(name)

    def client_index(self, name: str) -> int:
        return [c.name for c in self.clients].index(name)

    @property
    def uses_netem(self) -> bool:
        """Whether some link asks for delay or loss (the kernel needs sch_netem)."""
        upstream = [self.upstream.links.lan, self.upstream.links.wan] if self.upstream else []
        links = [self.router.links.lan, self.router.links.wan, *upstream, *(n.link for n in [*self.servers, *self.clients])]
        return any(link.uses_netem for link in links)

    @property
    def node_names(self) -> list[str]:
        stun = [STUN_NODE] if self.nat_probe else []
        upstream = [UPSTREAM_NODE] if self.upstream else []
        return ["router", *upstream] + [s.name for s in self.servers] + stun + [c.name for c in self.clients]

    # --- scenario steps (issue 11) and per-protocol tunnel options: one separate block ---------
    # Run in order after bring-up (lab.steps). Not stored with a running lab's topology
    # (exclude): an exec step's command stays out of every file vpnlab writes.
    steps: list[Step] = Field(default_factory=list, exclude=True)

    @field_validator("tunnels")
    @classmethod
    def protocol_options(cls, tunnels: list[Tunnel]) -> list[Tunnel]:
        from lab.protocols import PROTOCOLS  # the protocols import this module
        from lab.protocols.options import unknown_options
        from lab.protocols.ports import port_problems

        problems = [
            ((i, "options", key), message)
            for i, t in enumerate(tunnels)
            if t.protocol in PROTOCOLS
            for key, message in {**unknown_options(t.options, PROTOCOLS[t.protocol]),
                                 **PROTOCOLS[t.protocol].option_problems(t.options)}.items()
        ]
        problems = problems or port_problems(tunnels)
        _raise_located([(loc, message, "value_error") for loc, message in problems], tunnels)
        return tunnels

    @field_validator("steps", mode="wrap")
    @classmethod
    def steps_name_the_topology(cls, value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> list[Step]:
        """The steps' shape and, beside its problems, the tunnels and nodes they name."""
        shape: list[ErrorDetails] = []
        try:
            steps = handler(value)
        except ValidationError as exc:
            shape, steps = exc.errors(), []
        data = info.data
        named: list[tuple[tuple[object, ...], str]] = []
        if all(key in data for key in ("tunnels", "servers", "clients")):  # else reported where it is
            stun = [STUN_NODE] if data.get("nat_probe") else []
            upstream = [UPSTREAM_NODE] if data.get("upstream") else []
            nodes = ["router", *upstream] + [s.name for s in data["servers"]] + stun + [c.name for c in data["clients"]]
            named = step_problems(value, data["tunnels"], nodes, data.get("router"), data.get("upstream", False))
        located = {tuple(e["loc"]) for e in shape}
        _raise_located([(tuple(e["loc"]), e["msg"], e["type"]) for e in shape]
                       + [(loc, message, "value_error") for loc, message in named if loc not in located], value)
        return steps


def _raise_located(problems: list[tuple[tuple[object, ...], str, str]], value: object) -> None:
    """Raise (location, message, error type) problems as one ValidationError: pydantic puts each
    under the field's location; the type is kept so that lab.topology.load words it as usual."""
    if problems:
        raise ValidationError.from_exception_data(
            "Topology",
            [
                InitErrorDetails(type=PydanticCustomError(kind, "{reason}", {"reason": message}), loc=loc, input=value)
                for loc, message, kind in problems
            ],
        )
