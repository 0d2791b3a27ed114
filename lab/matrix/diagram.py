"""The lab as an inline SVG: clients on the LAN, the router between, servers on the WAN (no external anything)."""

from __future__ import annotations

import textwrap
from html import escape

from lab.matrix.result import LabLayout

LINE = 17  # px per text line
PAD = 10
GAP = 14
CLIENT_X, CLIENT_W = 30, 180
ROUTER_X, ROUTER_W = 330, 200
SERVER_X, SERVER_W = 650, 260
WIDTH = SERVER_X + SERVER_W + 30
TOP = 48  # room for the segment labels


def _box(x: int, y: int, w: int, lines: list[str], css: str) -> tuple[str, int]:
    height = PAD * 2 + LINE * len(lines)
    parts = [f'<rect class="{css}" x="{x}" y="{y}" width="{w}" height="{height}" rx="8"/>']
    for i, line in enumerate(lines):
        weight = ' class="name"' if i == 0 else ""
        parts.append(f'<text x="{x + w // 2}" y="{y + PAD + LINE * (i + 1) - 4}"{weight}>{escape(line)}</text>')
    return "".join(parts), height


def _column(x: int, w: int, nodes: list[list[str]], css: str) -> tuple[list[str], list[int], int]:
    """Stack boxes from TOP; returns their SVG, the middle y of each, and the column's bottom."""
    parts, middles, y = [], [], TOP
    for lines in nodes:
        svg, height = _box(x, y, w, lines, css)
        parts.append(svg)
        middles.append(y + height // 2)
        y += height + GAP
    return parts, middles, y - GAP


def lab_svg(lab: LabLayout) -> str:
    clients = [[c.name, c.address] for c in lab.clients] or [["(no clients)"]]
    servers = [[s.name, s.address, *textwrap.wrap(", ".join(s.protocols), 32, break_on_hyphens=False)] for s in lab.servers] or [["(no servers)"]]
    client_svg, client_mid, client_bottom = _column(CLIENT_X, CLIENT_W, clients, "client")
    server_svg, server_mid, server_bottom = _column(SERVER_X, SERVER_W, servers, "server")
    bottom = max(client_bottom, server_bottom, TOP + 100)
    router_lines = [lab.router, f"LAN {lab.router_lan}", f"WAN {lab.router_wan}"]
    router_y = TOP + (bottom - TOP) // 2 - (PAD * 2 + LINE * len(router_lines)) // 2
    router_svg, router_h = _box(ROUTER_X, router_y, ROUTER_W, router_lines, "router")
    router_mid = router_y + router_h // 2
    height = bottom + 24
    wires = [f'<line x1="{CLIENT_X + CLIENT_W}" y1="{y}" x2="{ROUTER_X}" y2="{router_mid}"/>' for y in client_mid]
    wires += [f'<line x1="{ROUTER_X + ROUTER_W}" y1="{router_mid}" x2="{SERVER_X}" y2="{y}"/>' for y in server_mid]
    segments = [
        f'<rect class="segment" x="{CLIENT_X - 18}" y="8" width="{CLIENT_W + 36}" height="{height - 16}" rx="12"/>',
        f'<text class="segment" x="{CLIENT_X - 6}" y="30">{escape("LAN " + lab.lan)}</text>',
        f'<rect class="segment" x="{SERVER_X - 18}" y="8" width="{SERVER_W + 36}" height="{height - 16}" rx="12"/>',
        f'<text class="segment" x="{SERVER_X - 6}" y="30">{escape("WAN " + lab.wan)}</text>',
    ]
    return (
        f'<svg class="lab" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="lab layout">'
        + "".join(segments) + '<g class="wires">' + "".join(wires) + "</g>"
        + "".join(client_svg) + router_svg + "".join(server_svg) + "</svg>"
    )
