"""`vpnlab doctor`: what this machine's engine can run, before a lab is brought up.

Why: whether a VPN tunnel can come up depends first on the engine (reachable?),
the lab images (built?) and the kernel the engine runs on (PPP, L2TP, ESP,
WireGuard...). The doctor gathers all three per *runtime* — the host's engine
and the User-Mode Linux guest's engine, reported side by side — and names the
exact missing feature for every registered protocol (``lab.protocols.PROTOCOLS``).

CLI wiring::

    report = run_doctor(docker.from_env, extra_runtimes=[("uml", guest_client)])
    render(report, console)            # or: json.dumps(report.to_dict())
    sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from lab.errors import VpnlabError
from lab.images import IMAGES
from lab.kernel import (
    FEATURE_LABELS,
    KernelFeatures,
    ProtocolSupport,
    check_protocol,
    probe_engine_kernel,
)

if TYPE_CHECKING:  # pragma: no cover
    import docker
    from rich.console import Console

ClientFactory = Callable[[], "docker.DockerClient"]

REQUIRED_IMAGES = [spec.tag for spec in IMAGES]
PROBE_IMAGE = "vpnlab/base:latest"
PROBE_IMAGE_FALLBACKS = ["vpnlab/debian:bookworm", "debian:bookworm-slim"]
SETUP_HINT = "hint: 'vpnlab setup' installs and starts the Docker engine and the tools vpnlab needs"


def doctor_protocols() -> list[str]:
    """Every registered protocol, in registry order (built-in ones first, then plugins)."""
    from lab.protocols import PROTOCOLS

    return list(PROTOCOLS)


@dataclass
class EngineInfo:
    reachable: bool
    version: str = ""
    api_version: str = ""
    os: str = ""
    arch: str = ""
    kernel: str = ""
    error: str = ""


@dataclass
class ImageStatus:
    ref: str
    present: bool
    image_id: str = ""
    error: str = ""


@dataclass
class RuntimeReport:
    """One engine and the kernel under it (the host's, or a User-Mode Linux guest's)."""

    name: str
    engine: EngineInfo
    images: list[ImageStatus] = field(default_factory=list)
    probe_image: str | None = None
    kernel: KernelFeatures | None = None
    protocols: list[ProtocolSupport] = field(default_factory=list)
    skipped: str | None = None  # why the probe (and what follows) did not run

    @property
    def ok(self) -> bool:
        return self.engine.reachable and all(i.present for i in self.images) and self.kernel is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "engine": asdict(self.engine),
            "images": [asdict(i) for i in self.images],
            "probe_image": self.probe_image,
            "kernel": self.kernel.to_dict() if self.kernel else None,
            "protocols": [p.to_dict() for p in self.protocols],
            "skipped": self.skipped,
        }


@dataclass
class DoctorReport:
    # One entry per engine checked: "host", and a User-Mode Linux guest's engine
    # when one is available, rendered side by side.
    runtimes: list[RuntimeReport]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runtimes)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "runtimes": [r.to_dict() for r in self.runtimes]}


def _check_images(client: docker.DockerClient, refs: Sequence[str]) -> list[ImageStatus]:
    import docker.errors

    out = []
    for ref in refs:
        try:
            img = client.images.get(ref)
            out.append(ImageStatus(ref, True, image_id=img.short_id))
        except docker.errors.ImageNotFound:
            out.append(ImageStatus(ref, False))
        except docker.errors.APIError as e:
            out.append(ImageStatus(ref, False, error=str(e)))
    return out


def check_runtime(name: str, client_factory: ClientFactory) -> RuntimeReport:
    """Engine, images, kernel probe and protocol verdicts for one engine."""
    import docker.errors

    try:
        client = client_factory()
        v = client.version()
    except (docker.errors.DockerException, OSError, VpnlabError) as e:
        return RuntimeReport(name, EngineInfo(False, error=str(e)), skipped="docker engine not reachable")
    engine = EngineInfo(
        True,
        version=str(v.get("Version", "")),
        api_version=str(v.get("ApiVersion", "")),
        os=str(v.get("Os", "")),
        arch=str(v.get("Arch", "")),
        kernel=str(v.get("KernelVersion", "")),
    )
    report = RuntimeReport(name, engine, images=_check_images(client, REQUIRED_IMAGES))
    present = {i.ref for i in report.images if i.present}
    candidates = [PROBE_IMAGE, *PROBE_IMAGE_FALLBACKS]
    fallbacks = _check_images(client, [c for c in candidates if c not in present])
    present |= {i.ref for i in fallbacks if i.present}
    report.probe_image = next((c for c in candidates if c in present), None)
    if report.probe_image is None:
        report.skipped = "probe skipped: no image (" + ", ".join(candidates) + ")"
        return report
    try:
        report.kernel = probe_engine_kernel(client, report.probe_image)
    except VpnlabError as e:
        report.skipped = f"probe failed: {e}"
        return report
    report.protocols = [check_protocol(p, report.kernel) for p in doctor_protocols()]
    return report


def run_doctor(
    client_factory: ClientFactory,
    *,
    extra_runtimes: Sequence[tuple[str, ClientFactory]] = (),
) -> DoctorReport:
    """Check the host engine and any extra runtimes (a User-Mode Linux guest's engine)."""
    runtimes = [("host", client_factory), *extra_runtimes]
    return DoctorReport([check_runtime(name, factory) for name, factory in runtimes])


# --- rendering ---------------------------------------------------------------

_MARK = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[yellow]?[/]"}


def _protocol_cell(p: ProtocolSupport | None) -> str:
    from rich.markup import escape

    if p is None:
        return "[dim]not checked[/]"
    if p.runnable:
        text = f"{_MARK[True]} {escape(p.via)}"
        if p.recommended_missing:
            text += "\n[yellow]recommended: " + escape("; ".join(p.recommended_missing)) + "[/]"
        return text
    if p.runnable is False:
        return f"{_MARK[False]} missing: " + escape("; ".join(p.missing))
    return f"{_MARK[None]} undetermined: " + escape("; ".join(p.unknown))


def render(report: DoctorReport, console: Console) -> None:
    """Readable tables: per runtime engine/images/kernel, then protocols side by side."""
    from rich.markup import escape
    from rich.table import Table

    for rt in report.runtimes:
        eng = Table(title=f"{escape(rt.name)}: docker engine", show_header=False, title_justify="left")
        eng.add_column("key", style="bold")
        eng.add_column("value")
        if rt.engine.reachable:
            eng.add_row("reachable", _MARK[True])
            eng.add_row("version", f"{rt.engine.version} (API {rt.engine.api_version})")
            eng.add_row("platform", f"{rt.engine.os}/{rt.engine.arch}, kernel {rt.engine.kernel}")
        else:
            eng.add_row("reachable", f"{_MARK[False]} {escape(rt.engine.error)}")
        console.print(eng)
        if not rt.engine.reachable:
            console.print(f"[yellow]{escape(rt.skipped or '')}: images and kernel not checked[/]")
            console.print(f"[yellow]{SETUP_HINT}[/]")
            continue

        imgs = Table(title=f"{escape(rt.name)}: images", title_justify="left")
        imgs.add_column("image")
        imgs.add_column("present")
        imgs.add_column("id")
        for i in rt.images:
            imgs.add_row(i.ref, _MARK[i.present], escape(i.image_id or i.error))
        console.print(imgs)
        if not all(i.present for i in rt.images):
            console.print("[yellow]hint: 'vpnlab images build' builds the missing images[/]")

        if rt.kernel is None:
            console.print(f"[yellow]{escape(rt.skipped or 'kernel not probed')}[/]")
            continue
        kt = Table(
            title=f"{escape(rt.name)}: kernel {rt.kernel.release} (probed with {rt.probe_image})",
            title_justify="left",
        )
        kt.add_column("feature")
        kt.add_column("")
        kt.add_column("detail", overflow="fold")
        for f in rt.kernel.features.values():
            kt.add_row(FEATURE_LABELS.get(f.name, f.name), _MARK[f.available], escape(f.detail))
        console.print(kt)

    pt = Table(title="VPN protocols on each runtime's kernel", title_justify="left")
    pt.add_column("protocol", style="bold")
    for rt in report.runtimes:
        pt.add_column(rt.name, overflow="fold")
    for proto in doctor_protocols():
        cells = []
        for rt in report.runtimes:
            found = next((p for p in rt.protocols if p.name == proto), None)
            cells.append(_protocol_cell(found))
        pt.add_row(proto, *cells)
    console.print(pt)
