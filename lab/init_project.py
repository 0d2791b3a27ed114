"""`vpnlab init`: a starter project in someone else's repository.

Writes a topology, a pytest file that uses the plugin (one test case per tunnel,
so JUnit names each tunnel), the test dependency and a CI workflow. Existing
files are never overwritten without ``force``, and the check happens before
anything is written, so a refusal leaves the folder as it was.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from lab import __version__
from lab.errors import VpnlabError
from lab.topology.model import NAME_RE, NAME_RULE

DEFAULT_NAME = "vpn-starter"


@dataclass(frozen=True)
class StarterFile:
    template: str  # under lab/templates/init/
    target: str  # relative to the project folder; {name} is the topology's name


STARTER_FILES = (
    StarterFile("topology.yml.j2", "topologies/{name}.yml"),
    StarterFile("test_vpn.py.j2", "tests/test_vpn.py"),
    StarterFile("requirements.txt.j2", "requirements-vpnlab.txt"),
    StarterFile("workflow.yml.j2", ".github/workflows/vpnlab.yml"),
)


class ProjectFileExists(VpnlabError):
    def __init__(self, path: Path):
        self.path = path
        super().__init__(f"{path} already exists; nothing was written", hint="pass --force to overwrite it")


def name_from_folder(folder: Path) -> str:
    """A valid lab name from a folder's name ('My VPN Tests' -> 'my-vpn-tests'), else the default."""
    candidate = re.sub(r"[^a-z0-9]+", "-", folder.resolve().name.lower()).strip("-")
    candidate = re.sub(r"^[^a-z]+", "", candidate)[:24].rstrip("-")
    return candidate if NAME_RE.fullmatch(candidate) else DEFAULT_NAME


def render_project(name: str) -> dict[str, str]:
    """Relative path -> text of every starter file (nothing touches the disk)."""
    if not NAME_RE.fullmatch(name):
        raise VpnlabError(f"'{name}' is not a valid lab name ({NAME_RULE})", hint="choose another with --name")
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lab", "templates/init"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    values = {"name": name, "version": __version__}
    return {f.target.format(name=name): env.get_template(f.template).render(values) for f in STARTER_FILES}


def write_project(directory: Path, *, name: str | None = None, force: bool = False) -> list[Path]:
    """Write the starter project into ``directory``; returns the paths written."""
    files = render_project(name or name_from_folder(directory))
    targets = {directory / relative: text for relative, text in files.items()}
    if not force:
        for path in targets:
            if path.exists() or path.is_symlink():
                raise ProjectFileExists(path)
    written: list[Path] = []
    created: list[Path] = []  # files that did not exist before: removed again if a later write fails
    try:
        for path, text in targets.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            existed = path.exists()
            partial = path.with_name(f".{path.name}.vpnlab-init")
            partial.write_text(text)
            os.replace(partial, path)  # a file is either the old one or the whole new one
            written.append(path)
            if not existed:
                created.append(path)
    except OSError as exc:
        for path in created:
            path.unlink(missing_ok=True)
        raise VpnlabError(
            f"could not write {exc.filename}: {exc.strerror}", hint="the files this run had created were removed"
        ) from exc
    return written
