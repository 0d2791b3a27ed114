"""Build the lab's container images, and rebuild only what changed.

Why this module exists: a lab needs four images (one fat ``base`` with every
daemon, and thin ``router``/``client``/``server`` layers on it) on machines that
may have no container registry at all. So the Debian base is chosen at run time
(local ``debian:bookworm-slim``, else a pull, else a ``debootstrap`` import made
here), and each image carries a content hash of its build folder and parent
image as a label, so an unchanged image is never rebuilt. Everything goes
through the docker SDK (no CLI processes: each one costs about a second inside
a User-Mode Linux guest).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
from rich.console import Console
from rich.table import Table

from lab.errors import DockerUnavailable, ImageError, PrerequisiteError


HASH_LABEL = "vpnlab.context-hash"
UPSTREAM_BASE = "debian:bookworm-slim"
DEBIAN_TAG = "vpnlab/debian:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# The mirror is plain http: the Release file's signature, checked against Debian's archive keys,
# is what makes the base image trustworthy (its hashes then cover every package).
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
ROLES = ("router", "client", "server")
PULL_TIMEOUT = 20  # seconds; any failure within it means "no registry"
LOG_TAIL = 30  # build-log lines quoted in an ImageError


@dataclass(frozen=True)
class ImageSpec:
    name: str  # folder under images_dir()
    parent: str | None  # name of the spec it is built FROM; None = the chosen Debian base
    build_arg: str  # Dockerfile ARG that receives the parent image

    @property
    def tag(self) -> str:
        return f"vpnlab/{self.name}:latest"

    def context(self) -> Path:
        return images_dir() / self.name


# Build order: every parent comes before its children.
IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec("base", None, "BASE"),
    *(ImageSpec(role, "base", "BASE_IMAGE") for role in ROLES),
)


@dataclass(frozen=True)
class BuildResult:
    name: str
    tag: str
    built: bool  # False: the existing image already had this content hash
    size_bytes: int
    seconds: float


# --- pure helpers (no Docker) --------------------------------------------------


def images_dir() -> Path:
    """The image build folders, as shipped in the package; ``VPNLAB_IMAGES_DIR`` overrides it at call time.

    The content hash covers relative paths and bytes only, so the same files
    hash the same from a checkout, an editable install or a wheel.
    """
    from lab.resources import images_dir as shipped_images_dir

    return shipped_images_dir()


def image_tag(role: str) -> str:
    """The image a node of ``role`` (router, client, server) runs."""
    if role not in ROLES:
        raise ImageError(role, "no image for this role", hint="roles: " + ", ".join(ROLES))
    return f"vpnlab/{role}:latest"


def context_hash(directory: Path, parent_id: str) -> str:
    """sha256 over the build folder's files (relative path + bytes, sorted) and the parent image id."""
    digest = hashlib.sha256()
    digest.update(b"parent\0" + parent_id.encode() + b"\0")
    files = sorted(
        (p for p in directory.rglob("*") if p.is_symlink() or p.is_file()),
        key=lambda p: p.relative_to(directory).as_posix(),
    )
    for path in files:
        data = f"->{os.readlink(path)}".encode() if path.is_symlink() else path.read_bytes()
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


def human_size(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.1f} MB"


# --- Docker helpers -------------------------------------------------------------


def _image(client: docker.DockerClient, ref: str):
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def missing_images(client: docker.DockerClient) -> list[str]:
    """Tags of the lab images not present in the engine (empty: ready to run)."""
    return [spec.tag for spec in IMAGES if _image(client, spec.tag) is None]


@contextmanager
def _status(console: Console | None, text: str) -> Iterator[Callable[[str], None]]:
    """A rich spinner line when a console is given; yields an update(text) function."""
    if console is None:
        yield lambda _text: None
        return
    with console.status(text) as status:
        yield lambda new: status.update(f"{text}: {new}")


def _try_pull(client: docker.DockerClient, ref: str) -> bool:
    repository, _, tag = ref.partition(":")
    saved = client.api.timeout
    client.api.timeout = PULL_TIMEOUT
    try:
        client.api.pull(repository, tag=tag or "latest")
        return _image(client, ref) is not None
    except Exception:  # noqa: BLE001 - no registry, DNS, timeout, auth: all mean "cannot pull"
        return False
    finally:
        client.api.timeout = saved


def choose_base(client: docker.DockerClient, console: Console | None = None) -> str:
    """The Debian image the base builds FROM: upstream slim if available, else a debootstrap import."""
    if _image(client, UPSTREAM_BASE) is not None:
        return UPSTREAM_BASE
    with _status(console, f"pulling {UPSTREAM_BASE}"):
        if _try_pull(client, UPSTREAM_BASE):
            return UPSTREAM_BASE
    if _image(client, DEBIAN_TAG) is None:
        if console:
            console.print(f"no registry: making {DEBIAN_TAG} with debootstrap (about 30 s, once)")
        make_debian_base(client, DEBIAN_TAG, console=console)
    return DEBIAN_TAG


def _unmount_below(directory: Path) -> None:
    """Undo mounts debootstrap may leave behind (proc, sys) so removal cannot reach the host."""
    prefix = str(directory.resolve()) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def debootstrap_command(suite: str, rootfs: Path, mirror: str, keyring: Path = DEBIAN_KEYRING) -> list[str]:
    """debootstrap's command line: a minbase system whose Release signature must verify against
    ``keyring`` (--force-check-gpg: no silent fallback to unchecked when the check cannot run)."""
    return ["debootstrap", "--variant=minbase", f"--keyring={keyring}", "--force-check-gpg", suite, str(rootfs), mirror]


def make_debian_base(
    client: docker.DockerClient,
    tag: str = DEBIAN_TAG,
    *,
    suite: str = "bookworm",
    mirror: str = DEBIAN_MIRROR,
    console: Console | None = None,
) -> str:
    """debootstrap a minbase Debian, import it as ``tag``; returns the image id. Needs root."""
    if shutil.which("debootstrap") is None:
        raise PrerequisiteError(
            "debootstrap",
            f"not installed, and no registry gave {UPSTREAM_BASE}",
            hint="apt-get install debootstrap (ci/install.sh does it), or docker load a debian:bookworm-slim",
        )
    if os.geteuid() != 0:
        raise PrerequisiteError(
            "root",
            f"making {tag} with debootstrap needs root (no registry gave {UPSTREAM_BASE})",
            hint="run once as root (sudo), or docker load a debian:bookworm-slim",
        )
    if not DEBIAN_KEYRING.is_file():
        raise PrerequisiteError(
            "debian-archive-keyring",
            f"{DEBIAN_KEYRING} is missing: the debootstrap base image could not be verified",
            hint="apt-get install debian-archive-keyring (vpnlab setup does it), or docker load a debian:bookworm-slim",
        )
    repository, _, version = tag.partition(":")
    workdir = Path(
        tempfile.mkdtemp(prefix="vpnlab-debootstrap-", dir="/var/tmp" if Path("/var/tmp").is_dir() else None)
    )
    rootfs, tarball = workdir / "rootfs", workdir / "rootfs.tar"
    try:
        with _status(console, f"making {tag}") as update:
            update(f"debootstrap {suite} from {mirror}")
            steps = [
                debootstrap_command(suite, rootfs, mirror),
                ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."],
            ]
            for argv in steps:
                done = subprocess.run(argv, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
                if done.returncode != 0:
                    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-LOG_TAIL:])
                    raise ImageError(tag, f"{argv[0]} failed (exit {done.returncode}):\n{tail}")
            update("importing")
            result = client.api.import_image_from_file(
                str(tarball), repository=repository, tag=version or "latest", changes=['CMD ["bash"]']
            )
        image = _image(client, tag)
        if image is None:
            raise ImageError(tag, f"import did not produce the image: {str(result)[-500:]}")
        return image.id
    finally:
        _unmount_below(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def _build(
    client: docker.DockerClient,
    spec: ImageSpec,
    buildargs: dict[str, str],
    labels: dict[str, str],
    update: Callable[[str], None],
) -> None:
    log: deque[str] = deque(maxlen=LOG_TAIL)
    stream = client.api.build(
        path=str(spec.context()),
        tag=spec.tag,
        decode=True,
        rm=True,
        forcerm=True,
        pull=False,
        buildargs=buildargs,
        labels=labels,
    )
    for chunk in stream:
        if "error" in chunk:
            log.append(chunk["error"].rstrip())
            raise ImageError(spec.tag, "build failed; last lines of the build log:\n" + "\n".join(log))
        for line in chunk.get("stream", "").splitlines():
            if line.strip():
                log.append(line.rstrip())
                if line.startswith("Step "):
                    update(line[:100])


def ensure_images(
    client: docker.DockerClient, console: Console | None = None, force: bool = False
) -> list[BuildResult]:
    """Build base, router, client, server in order; skip any whose content hash label already matches."""
    results: list[BuildResult] = []
    replaced: list[str] = []  # ids of images a rebuild took the tag from
    try:
        refs: dict[str | None, str] = {None: choose_base(client, console)}  # spec name -> image it builds FROM
        for spec in IMAGES:
            started = time.monotonic()
            parent_ref = refs[spec.parent]
            parent = _image(client, parent_ref)
            if parent is None:
                raise ImageError(spec.tag, f"parent image {parent_ref} is missing")
            context = spec.context()
            if not (context / "Dockerfile").is_file():
                raise ImageError(
                    spec.tag, f"no Dockerfile in {context}", hint="reinstall vpnlab (its wheel ships the Dockerfiles), or set VPNLAB_IMAGES_DIR to a folder holding base/, router/, client/, server/"
                )
            wanted = context_hash(context, parent.id)
            existing = _image(client, spec.tag)
            build = force or existing is None or (existing.labels or {}).get(HASH_LABEL) != wanted
            if build:
                with _status(console, f"building {spec.tag}") as update:
                    _build(client, spec, {spec.build_arg: parent_ref}, {HASH_LABEL: wanted}, update)
                if existing is not None:
                    replaced.append(existing.id)
            image = _image(client, spec.tag)
            if image is None:
                raise ImageError(spec.tag, "build finished but the image is missing")
            refs[spec.name] = spec.tag
            results.append(
                BuildResult(spec.name, spec.tag, build, image.attrs.get("Size", 0), time.monotonic() - started)
            )
        _remove_untagged(client, replaced)
    except docker.errors.APIError as error:  # the engine answered, but refused
        raise ImageError("vpnlab images", f"engine error: {error.explanation or error}") from error
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as error:
        raise DockerUnavailable(str(error)) from error
    if console is not None and any(r.built for r in results):  # nothing to say when all were up to date
        console.print(summary_table(results))
    return results


def _remove_untagged(client: docker.DockerClient, image_ids: list[str]) -> None:
    """Best effort: drop images a rebuild replaced (children first), unless still tagged or in use."""
    for image_id in reversed(image_ids):
        image = _image(client, image_id)
        if image is not None and not image.tags:
            try:
                client.images.remove(image_id)
            except docker.errors.APIError:
                pass


def summary_table(results: list[BuildResult]) -> Table:
    table = Table(title="vpnlab images")
    for column in ("image", "action", "size", "time"):
        table.add_column(column, justify="right" if column in ("size", "time") else "left")
    for r in results:
        table.add_row(r.tag, "built" if r.built else "up to date", human_size(r.size_bytes), f"{r.seconds:.1f} s")
    return table
