"""What a matrix run will do, decided before anything is created: profiles, protocols, cells, labs.

``select`` resolves ``--profiles``/``--protocols``/``--shard`` into a Selection (bad input is one
VpnlabError, exit 2, before any engine is touched); ``lab_jobs`` groups its cells into one lab
per profile, and ``lab_topology`` writes that lab's topology: server ``vpn`` with every selected
protocol but l2tp-ipsec, ``vpn2`` with l2tp-ipsec (xl2tpd's UDP 1701 cannot serve both),
one client ``alice`` with a tunnel per protocol, the profile's router and expectations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lab.errors import VpnlabError
from lab.matrix.result import LabLayout, LabNode, ProfileInfo, parse_shard, shard_cells

if TYPE_CHECKING:  # pragma: no cover
    from lab.profiles import Profile
    from lab.topology.model import Topology

CLIENT = "alice"
MAIN_SERVER = "vpn"
SECOND_SERVER = "vpn2"
ALONE = ("l2tp-ipsec",)  # protocols that get the second server (port clash with l2tp)
LAB_PREFIX = "mx-"


class SelectionError(VpnlabError):
    """A --profiles, --protocols or --shard value that names nothing runnable."""


@dataclass
class Selection:
    profiles: list[Profile]
    protocols: list[str]
    pairs: list[tuple[str, str]]  # (profile, protocol) this run (this shard) decides
    shard: str | None = None


@dataclass
class LabJob:
    """One lab: a profile and the protocols of it this run decides."""

    profile: Profile
    protocols: list[str]
    name: str
    skipped: dict[str, str] = field(default_factory=dict)  # protocol -> why no runtime here can run it
    pool: str = ""  # which engines run it (see lab.matrix.run): the host's, or UML guests
    nat_probe: bool = True  # measure the profile's NAT here (one lab per profile does)

    @property
    def runnable(self) -> list[str]:
        return [p for p in self.protocols if p not in self.skipped]


def split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def select(profiles: str | None, protocols: str | None, shard: str | None) -> Selection:
    """Resolve the command's selection; every bad value raises one error naming it."""
    from lab.profiles import builtin_profiles, load_profile
    from lab.protocols import PROTOCOLS

    known = list(PROTOCOLS)
    chosen_protocols = split_list(protocols) or known
    unknown = [p for p in chosen_protocols if p not in PROTOCOLS]
    if unknown:
        raise SelectionError(f"unknown protocol(s): {', '.join(unknown)}", hint="known: " + ", ".join(known))
    chosen_protocols = [p for p in known if p in chosen_protocols]  # registry order, once each

    refs = split_list(profiles) or builtin_profiles()
    loaded: list[Profile] = []
    for ref in dict.fromkeys(refs):
        profile = load_profile(ref)  # a ProfileError names the file and the field
        if any(p.name == profile.name for p in loaded):
            raise SelectionError(f"two profiles are named '{profile.name}' ({ref})", hint="rename one")
        missing = [p for p in chosen_protocols if p not in profile.expect]
        if missing:
            raise SelectionError(f"profile '{profile.name}' ({profile.source}) has no expectation for "
                                 f"{', '.join(missing)}", hint="add them under its 'expect:'")
        loaded.append(profile)

    pairs = [(p.name, proto) for p in loaded for proto in chosen_protocols]
    if shard:
        k, n = parse_shard(shard)
        picked = set(shard_cells(pairs, k, n))
        pairs = [pair for pair in pairs if pair in picked]  # keep the matrix's order
    return Selection(loaded, chosen_protocols, pairs, shard)


def lab_name(profile: str, taken: set[str], prefix: str = LAB_PREFIX) -> str:
    """'mx-<profile>' as a valid topology name (<= 24 characters), unique in this run."""
    slug = re.sub(r"[^a-z0-9-]+", "-", profile.lower()).strip("-") or "profile"
    base = (prefix + slug)[:24].rstrip("-")
    name, n = base, 2
    while name in taken:
        suffix = f"-{n}"
        name = base[: 24 - len(suffix)].rstrip("-") + suffix
        n += 1
    taken.add(name)
    return name


def lab_jobs(selection: Selection) -> list[LabJob]:
    """One lab per profile the selection touches, with only that profile's selected cells."""
    taken: set[str] = set()
    # Shards of one CI run may share an engine: their labs' names must differ ('mx2-open').
    prefix = f"mx{selection.shard.partition('/')[0]}-" if selection.shard else LAB_PREFIX
    jobs = []
    for profile in selection.profiles:
        protocols = [proto for name, proto in selection.pairs if name == profile.name]
        if protocols:
            jobs.append(LabJob(profile, protocols, lab_name(profile.name, taken, prefix)))
    return jobs


def nat_probe_supported() -> bool:
    """Whether this vpnlab's topology model knows the ``nat_probe`` key (the NAT probe is installed)."""
    from lab.topology.model import Topology

    return "nat_probe" in Topology.model_fields


def split_job(job: LabJob, pools: list[tuple[str, set[str]]], taken: set[str]) -> list[LabJob]:
    """One lab per pool the job's protocols fall in (pools: name, protocols it runs; the first also
    gets the rest); the NAT probe goes with the first pool's lab."""
    parts: list[LabJob] = []
    left = list(job.protocols)
    for index, (pool, runs) in enumerate(pools):
        mine = [p for p in left if p in runs] if index < len(pools) - 1 else left
        left = [p for p in left if p not in mine]
        if not mine:
            continue
        name = job.name if not parts else lab_name(f"{job.name}-{pool}", taken, "")
        parts.append(LabJob(job.profile, mine, name, {p: r for p, r in job.skipped.items() if p in mine}, pool,
                            nat_probe=not parts))
    return parts


def topology_data(job: LabJob, nat_probe: bool | None = None) -> dict[str, Any]:
    protocols = job.runnable
    main = [p for p in protocols if p not in ALONE]
    alone = [p for p in protocols if p in ALONE]
    servers = []
    if main:
        servers.append({"name": MAIN_SERVER, "protocols": main})
    if alone:
        servers.append({"name": SECOND_SERVER, "protocols": alone})
    if not servers:  # every cell skipped: still a valid lab (for the NAT row), one plain server
        servers.append({"name": MAIN_SERVER, "protocols": main or ["wireguard"]})
    tunnels = [
        {"client": CLIENT, "server": SECOND_SERVER if p in ALONE else MAIN_SERVER, "protocol": p,
         "expect": job.profile.expect[p]}
        for p in protocols
    ]
    data: dict[str, Any] = {
        "name": job.name,
        "description": f"vpnlab matrix: profile '{job.profile.name}' ({job.profile.source})",
        "router": dict(job.profile.router),
        "servers": servers,
        "clients": [{"name": CLIENT}],
        "tunnels": tunnels,
    }
    if nat_probe if nat_probe is not None else (job.nat_probe and nat_probe_supported()):
        data["nat_probe"] = True
    return data


def lab_topology(job: LabJob, nat_probe: bool | None = None) -> Topology:
    """The job's topology, validated like a file (a profile's bad router section is one clear error)."""
    import yaml

    from lab.topology.load import parse_topology

    return parse_topology(yaml.safe_dump(topology_data(job, nat_probe), sort_keys=False),
                          source=f"profile '{job.profile.name}' ({job.profile.source})")


def profile_info(profile: Profile) -> ProfileInfo:
    return ProfileInfo(profile.name, profile.description, profile.source, dict(profile.router),
                       dict(profile.expect), dict(profile.reasons))


def layout(selection: Selection) -> LabLayout:
    """The lab drawn in the reports: every selected protocol's (a shard draws the same as the whole run)."""
    from lab.topology.addressing import plan_addresses

    job = LabJob(selection.profiles[0], list(selection.protocols), LAB_PREFIX + "layout")
    topology = lab_topology(job, nat_probe=False)
    addresses = plan_addresses(topology)
    return LabLayout(
        lan=str(addresses.lan), wan=str(addresses.wan), router="router",
        router_lan=str(addresses.router_lan), router_wan=str(addresses.router_wan),
        clients=[LabNode(c.name, str(addresses.clients[c.name])) for c in topology.clients],
        servers=[LabNode(s.name, str(addresses.servers[s.name]), list(s.protocols)) for s in topology.servers],
    )
