"""One error root for everything vpnlab reports to a person.

Every error carries its context as attributes and renders a message that says
what went wrong and what to do. The CLI prints ``str(error)`` and exits with
``error.exit_code``; nothing below the CLI prints tracebacks for these.
"""

from __future__ import annotations

from dataclasses import dataclass


class VpnlabError(Exception):
    """Root of every error vpnlab raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


@dataclass(frozen=True)
class Problem:
    """One located problem in a topology: ``tunnels[1].protocol: unknown ...``."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class TopologyError(VpnlabError):
    """A topology file that cannot be used; lists every problem found."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {len(self.problems)} problem(s) in the topology"]
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines), hint="fix the fields named above; nothing was created")


class PrerequisiteError(VpnlabError):
    """Something the host must provide is missing (engine, tool, kernel feature)."""

    def __init__(self, what: str, message: str, *, hint: str | None = None):
        self.what = what
        super().__init__(f"{what}: {message}", hint=hint)


class DockerUnavailable(PrerequisiteError):
    def __init__(self, detail: str):
        super().__init__(
            "docker engine",
            f"not reachable ({detail})",
            hint="'vpnlab setup' installs and starts one ('vpnlab setup --dry-run' says what it would do), "
            "or set DOCKER_HOST",
        )


class ImageError(VpnlabError):
    """An image that is missing or failed to build."""

    def __init__(self, image: str, message: str, *, hint: str | None = None):
        self.image = image
        super().__init__(f"image {image}: {message}", hint=hint)


class LabExistsError(VpnlabError):
    def __init__(self, name: str, topology: str):
        self.name = name
        self.topology = topology
        super().__init__(
            f"lab '{name}' is already running from a different topology ({topology})",
            hint=f"run 'vpnlab down {name}' first, or give this topology another name",
        )


class LabNotFound(VpnlabError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no lab named '{name}' is running", hint="'vpnlab status' lists the labs")


class NodeNotFound(VpnlabError):
    def __init__(self, lab: str, node: str, known: list[str]):
        self.lab = lab
        self.node = node
        super().__init__(
            f"lab '{lab}' has no node '{node}'",
            hint="nodes: " + ", ".join(sorted(known)) if known else None,
        )


class LabRuntimeError(VpnlabError):
    """A step of bringing a lab up failed inside a node."""

    def __init__(self, node: str, step: str, detail: str):
        self.node = node
        self.step = step
        self.detail = detail
        super().__init__(f"{node}: {step} failed: {detail.strip()[-2000:]}")


class CaptureError(VpnlabError):
    """A packet capture that cannot be made as asked: a bad option, or tcpdump failing in the node."""


class InterfaceNotFound(CaptureError):
    def __init__(self, lab: str, node: str, interface: str, known: list[str]):
        self.lab = lab
        self.node = node
        self.interface = interface
        self.known = list(known)
        super().__init__(f"node '{node}' of lab '{lab}' has no interface '{interface}' (it has: {', '.join(known)})")


class PcapError(VpnlabError):
    """Bytes that are not a readable pcap (or pcapng) capture."""
