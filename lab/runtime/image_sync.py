"""Copy the lab images from one engine into another (the host's into a UML guest's, or any two).

Images are built where a registry or the Debian mirror is reachable (the host)
and streamed into the guest with one save/load of all tags that differ, so
shared layers travel once. The content-hash label decides "differs": a second
run loads nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import docker
import docker.errors

from lab.errors import ImageError
from lab.images import HASH_LABEL, IMAGES


def _hash(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return client.images.get(tag).labels.get(HASH_LABEL)
    except docker.errors.ImageNotFound:
        return None


def outdated_tags(host: docker.DockerClient, guest: docker.DockerClient) -> list[str]:
    tags = []
    for spec in IMAGES:
        wanted = _hash(host, spec.tag)
        if wanted is None:
            raise ImageError(spec.tag, "missing on the host engine", hint="run 'vpnlab images build'")
        if _hash(guest, spec.tag) != wanted:
            tags.append(spec.tag)
    return tags


def sync_images(
    host: docker.DockerClient, guest: docker.DockerClient, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[str], float]:
    """Load into ``guest`` every lab image it lacks or holds in another version (any two engines)."""
    tags = outdated_tags(host, guest)
    if not tags:
        return [], 0.0
    progress(f"loading {len(tags)} image(s) into the guest engine (once; kept on its disk)")
    started = time.monotonic()
    # GET /images/get with every tag: one tar, shared layers once (the SDK's get_image takes one name).
    url = f"{host.api.base_url}/v{host.api.api_version}/images/get"
    response = host.api.get(url, params=[("names", t) for t in tags], stream=True)
    try:
        response.raise_for_status()
        for event in guest.api.load_image(response.iter_content(1 << 20)):
            if "error" in event:
                raise ImageError(", ".join(tags), f"loading into the guest failed: {event['error']}")
    finally:
        response.close()
    try:
        guest.images.prune(filters={"dangling": True})
    except docker.errors.APIError:
        pass
    return tags, time.monotonic() - started
