"""Per-tunnel scripts on the client: start-and-wait (the up-check) and evidence.

The up-check is one script run by one exec: it starts the tunnel, then
pings the server's tunnel address until it answers or the protocol's
deadline passes, so a verdict costs no polling from the host.
"""

from __future__ import annotations

from lab.protocols import PROTOCOLS
from lab.protocols.base import CONF_DIR, LOG_DIR, RUN_DIR, NodeFile, Protocol, TunnelContext
from lab.render import render

EVIDENCE_LINES = 20


def tunnel_dir(ctx: TunnelContext) -> str:
    return f"{CONF_DIR}/tunnels/{ctx.tunnel.id}"


def deadline(ctx: TunnelContext) -> float:
    return PROTOCOLS[ctx.tunnel.protocol].deadline_for(ctx)


def deadline_words(ctx: TunnelContext) -> str:
    """The deadline as the up-check's reasons say it: "20 s", or "40 s (20 s times 2 on the uml runtime)"."""
    scale = ctx.environment.time_scale
    if scale == 1:
        return f"{deadline(ctx):g} s"
    return f"{deadline(ctx):g} s ({deadline(ctx) / scale:g} s times {scale:g} on the {ctx.environment.runtime} runtime)"


def still_trying(proto: Protocol, ctx: TunnelContext) -> dict[str, str] | None:
    hook = proto.still_trying(ctx)
    return {"daemon": hook[0], "test": hook[1]} if hook else None


def tunnel_files(ctx: TunnelContext) -> list[NodeFile]:
    proto = PROTOCOLS[ctx.tunnel.protocol]
    iface = proto.client_interface(ctx)
    check = render(
        "common/check-tunnel.sh.j2",
        tunnel_id=ctx.tunnel.id,
        iface=iface,
        peer=proto.server_tunnel_address(ctx.plan, ctx.tunnel.server),
        # Optional hook: a shell command printing the ping's source address (empty while the
        # tunnel is not ready); otherwise the ping is bound to the interface (-I iface).
        ping_source=proto.ping_source(ctx),
        ping_source_note=proto.ping_source_note,
        start=proto.client_start(ctx),
        deadline=deadline_words(ctx),
        deadline_ms=int(deadline(ctx) * 1000),
        still_trying=still_trying(proto, ctx),
        log_dir=LOG_DIR,
        run_dir=RUN_DIR,
        stop=proto.client_stop(ctx),
        attempt=ctx.attempt_path,
        blocked=ctx.blocked_path,
        evidence=f"{tunnel_dir(ctx)}/evidence.sh",
        log=ctx.log_path,
        marks=[(log, ctx.mark_path(log)) for log in proto.client_shared_logs(ctx)],
    )
    sections = {
        "interface": f"ip -s -d link show dev {iface}",
        "addresses": f"ip -br address show dev {iface}",
        **proto.client_evidence(ctx),
        "client log": f"tail -n {EVIDENCE_LINES} {ctx.log_path}",
    }
    evidence = render("common/evidence.sh.j2", tunnel_id=ctx.tunnel.id, sections=sections)
    return [
        NodeFile(f"{tunnel_dir(ctx)}/check.sh", check, 0o755),
        NodeFile(f"{tunnel_dir(ctx)}/evidence.sh", evidence, 0o755),
    ]


def split_check_output(text: str) -> tuple[str, str]:
    """The up-check's own lines, and the client's evidence sections printed after them."""
    lines = text.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.startswith("==== ")), len(lines))
    return "".join(lines[:first]), "".join(lines[first:])


def parse_sections(text: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("==== "):
            current = sections.setdefault(line[5:].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in sections.items()}


def sections_command(sections: dict[str, str]) -> str:
    """One shell command printing each command's output under a '==== name' header."""
    return "; ".join(f"echo '==== {name}'; {{ {command} ; }} 2>&1" for name, command in sections.items()) + "; true"
