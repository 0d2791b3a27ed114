"""The router's NAT behaviour, measured with a real RFC 5780 probe.

A topology with ``nat_probe: true`` has a ``stun`` node on the WAN: coturn as a plain
STUN server on two addresses and two ports (lab.nodes.stun_node). ``measure_nat`` runs
coturn's ``turnutils_natdiscovery`` from the first client, through the router, against
the primary address: ``-m`` (mapping: RFC 5780 tests I-III, the mapped address seen by
the primary and the alternate address/port) and ``-f`` (filtering: replies asked from
the alternate address and port, then the alternate port only) run side by side, each
under ``timeout``. ``parse_natdiscovery`` (pure) reads their output.

Time: natdiscovery waits 3 s for a reply it never gets (a fixed receive timeout), so
address-and-port-dependent filtering costs about 6 s, a blocked probe about 3 s, and
anything else a fraction of a second.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from lab.check.evidence import COMMENT_RE
from lab.check.scripts import parse_sections
from lab.matrix.result import NatBehaviour
from lab.nodes import STUN_PORT

if TYPE_CHECKING:  # pragma: no cover
    from lab.plan import LabPlan
    from lab.runtime.lab import DockerLab

PROBE_TIMEOUT = 10  # seconds per natdiscovery run: its own waits add up to 6 s at most
MAPPING, FILTERING = "mapping", "filtering"
BEHAVIOURS = {
    "Endpoint Independent": "endpoint-independent",
    "Address Dependent": "address-dependent",
    "Address and Port Dependent": "address-and-port-dependent",
}
VERDICT_RE = re.compile(r"NAT with (Endpoint Independent|Address Dependent|Address and Port Dependent) (Mapping|Filtering)!")
# RFC 5780's tests in the order natdiscovery runs them (section 4.3 mapping, 4.4 filtering).
TESTS = {
    "mapping": ("test I (to the primary address)", "test II (to the alternate address)",
                "test III (to the alternate address and port)"),
    "filtering": ("test I (to the primary address)", "test II (reply asked from the alternate address and port)",
                  "test III (reply asked from the alternate port)"),
}
NO_NAT = "No NAT!"
NO_REPLY = "STUN receive timeout"
RFC5780_REPLY = "RFC 5780 response"


def probe_command(local_ip: str, server_ip: str, port: int = STUN_PORT, timeout: int = PROBE_TIMEOUT) -> str:
    """Both discoveries at once from ``local_ip`` (bound, so "No NAT" is seen), their outputs as sections."""
    base = f"timeout {timeout} turnutils_natdiscovery -L {shlex.quote(local_ip)} -p {port}"
    server = shlex.quote(server_ip)
    return (
        "m=$(mktemp) f=$(mktemp); "
        f"{base} -m {server} >\"$m\" 2>&1 & "
        f"{base} -f {server} >\"$f\" 2>&1; "
        "wait; "
        f"echo '==== {MAPPING}'; cat \"$m\"; "
        f"echo '==== {FILTERING}'; cat \"$f\"; "
        'rm -f "$m" "$f"'
    )


def _verdict(text: str, kind: str) -> str | None:
    for match in VERDICT_RE.finditer(text):
        if match.group(2).lower() == kind:
            return BEHAVIOURS[match.group(1)]
    return None


def _no_verdict_reason(text: str, where: str) -> str:
    """Why a discovery gave no verdict, from its output."""
    if not text.strip():
        return "the probe printed nothing (timed out or did not run)"
    if RFC5780_REPLY not in text and "reflexive addr" in text:
        return f"{where} answered without RFC 5780 attributes (no OTHER-ADDRESS)"
    if RFC5780_REPLY not in text and NO_REPLY in text:
        return f"no STUN reply from {where}"
    return "natdiscovery gave no verdict"


def _address(line: str, label: str) -> str | None:
    match = re.search(label + r"[: ]+(\S+)$", line)
    return match.group(1) if match else None


def evidence_lines(mapping_text: str, filtering_text: str) -> list[str]:
    """The probe in a few lines: each reply (who answered, which mapped address it saw), each
    wait that timed out, an ALG, the verdicts; labelled by discovery."""
    lines = []
    for kind, text in ((MAPPING, mapping_text), (FILTERING, filtering_text)):
        origin = mapped = None
        step = 0  # natdiscovery runs its tests in order; each ends in a reply or a timeout
        for line in text.splitlines():
            line = line.strip()
            origin = _address(line, "Response origin") or origin
            mapped = _address(line, "UDP reflexive addr") or mapped
            local = _address(line, "Local addr")
            test = TESTS[kind][min(step, 2)]
            if local and mapped:
                lines.append(f"{kind} {test}: reply from {origin or '?'}, mapped address {mapped} (local {local})")
                origin = mapped = None
                step += 1
            elif NO_REPLY in line:
                lines.append(f"{kind} {test}: no reply within 3 s")
                step += 1
            elif "ALG detected" in line or line.startswith((NO_NAT, "NAT with")) or "error" in line:
                lines.append(f"{kind}: {line}")
    return lines


def parse_natdiscovery(mapping_text: str, filtering_text: str, server: str = "the STUN server",
                       port: int = STUN_PORT) -> NatBehaviour:
    """RFC 5780 mapping and filtering behaviour from ``turnutils_natdiscovery -m`` and ``-f`` output.

    "No NAT!" (the client saw its own address) makes the mapping 'none'; filtering is still
    what a reply from the alternate address/port met (a stateful router filters without NAT).
    A discovery without a verdict is 'unknown', with the reason in the summary.
    """
    evidence = evidence_lines(mapping_text, filtering_text)
    no_nat = NO_NAT in mapping_text or NO_NAT in filtering_text
    mapping = "none" if no_nat else _verdict(mapping_text, MAPPING)
    filtering = _verdict(filtering_text, FILTERING)
    where = f"{server}:{port}"
    if mapping is None and filtering is None:
        reason = _no_verdict_reason(mapping_text, where)
        return NatBehaviour("unknown", "unknown", f"NAT behaviour unknown: {reason}", evidence)
    parts = [
        "no NAT (the client's own address is seen)" if mapping == "none"
        else f"{mapping} mapping" if mapping else f"mapping unknown ({_no_verdict_reason(mapping_text, where)})",
        f"{filtering} filtering" if filtering else f"filtering unknown ({_no_verdict_reason(filtering_text, where)})",
    ]
    return NatBehaviour(mapping or "unknown", filtering or "unknown", ", ".join(parts), evidence)


FLOW_LABEL_RE = re.compile(r"\b(?:tcp|udp)/\d+|\b(?:gre|esp|ah|icmp)\b")


def _covers(comment: str, port: int) -> bool:
    """Whether a drop's comment names UDP ``port`` ('udp/3478' or a range such as 'udp/3478-3479')."""
    return any(int(low) <= port <= int(high or low)
               for low, high in re.findall(r"\budp/(\d+)(?:-(\d+))?", comment))


def drop_counters(listing: str, port: int = STUN_PORT) -> dict[str, int]:
    """Packets counted by the router's DROP rules that may stop the probe, by comment, from
    ``iptables -L FORWARD -v -n -x``: drops whose comment names UDP ``port`` (a block, passthrough
    or strict rule of that flow) and drops naming no flow at all (the default drop, a strict
    router's "not allowed out"); not other flows' drops, which tunnels checked meanwhile may hit."""
    counters: dict[str, int] = {}
    for line in listing.splitlines():
        fields, comment = line.split(), COMMENT_RE.search(line)
        if len(fields) < 3 or not fields[0].isdigit() or fields[2] != "DROP" or not comment:
            continue
        name = comment.group(1)
        if FLOW_LABEL_RE.search(name) and not _covers(name, port):
            continue  # another flow's drop
        counters[name] = counters.get(name, 0) + int(fields[0])
    return counters


def drops_during(before: str, after: str, port: int = STUN_PORT) -> list[str]:
    """The drops that counted packets between two FORWARD listings, in words."""
    counted = drop_counters(before, port)
    return [
        f"router: FORWARD '{name}' dropped {packets - counted.get(name, 0)} packets during the probe"
        for name, packets in drop_counters(after, port).items()
        if packets > counted.get(name, 0)
    ]


def blocked_summary(behaviour: NatBehaviour, drops: list[str], port: int = STUN_PORT) -> NatBehaviour:
    """A probe that got no reply, with the router's drop counters as the cause when they rose."""
    if behaviour.mapping != "unknown" or behaviour.filtering != "unknown" or not drops:
        return behaviour
    rules = "; ".join(d.split(" '", 1)[1].split("'", 1)[0] for d in drops)
    return NatBehaviour(
        "unknown", "unknown", f"STUN blocked by the router (UDP {port}): dropped by '{rules}'", behaviour.evidence + drops
    )


COUNTERS = "iptables -L FORWARD -v -n -x 2>&1"


def measure_nat(lab: DockerLab, plan: LabPlan) -> NatBehaviour:
    """The router's NAT behaviour seen from the plan's first client against its ``stun`` node."""
    if not plan.topology.nat_probe:
        return NatBehaviour("unknown", "unknown", "not measured: the topology has no 'nat_probe: true'")
    client = plan.topology.clients[0].name
    client_ip = str(plan.addresses.clients[client])
    server_ip = str(plan.stun_addresses[0])
    router = plan.router.name
    before = lab.exec(router, COUNTERS).output
    run = lab.exec(client, probe_command(client_ip, server_ip))
    sections = parse_sections(run.output)
    behaviour = parse_natdiscovery(sections.get(MAPPING, ""), sections.get(FILTERING, ""), server_ip)
    behaviour.evidence.insert(0, f"probe: {client} ({client_ip}) -> stun {server_ip}:{STUN_PORT} through {router}")
    if behaviour.mapping == "unknown" and behaviour.filtering == "unknown":
        behaviour = blocked_summary(behaviour, drops_during(before, lab.exec(router, COUNTERS).output))
    return behaviour
