"""Probing the Docker engine's kernel: a short-lived container runs the probe script.

Why: VPN daemons need kernel pieces (PPP, L2TP, ESP, WireGuard, TUN, the PPTP
conntrack helper) that containers share with whatever kernel runs the engine —
this machine's host kernel lacks PPP, L2TP, ESP and WireGuard, a User-Mode Linux
guest has most of them. So the probe runs *through the engine* in a short-lived
container (network ``none``: it sends no packets anywhere) and every verdict
names the missing feature the way a person needs to look for it.

The script (lab/templates/kernel/probe.sh.j2) prints one ``name=yes|no|unknown detail``
line per feature; ``lab.kernel.features.parse_probe`` reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.errors import ImageError, PrerequisiteError
from lab.kernel.features import KernelFeatures, parse_probe
from lab.render import render

if TYPE_CHECKING:  # pragma: no cover
    import docker

PROBE_LABELS = {"vpnlab.probe": "1", "vpnlab.lab": "_probe"}
PROBE_TIMEOUT_S = 120.0  # a UML guest takes ~8 s just to start a container
PROBE_SCRIPT = render("kernel/probe.sh.j2")


def _is_device_error(err: Exception, path: str) -> bool:
    text = str(err)
    return path in text and ("device" in text or "no such file" in text.lower())


def probe_engine_kernel(
    client: docker.DockerClient, image: str, *, timeout: float = PROBE_TIMEOUT_S, key: str | None = None
) -> KernelFeatures:
    """Run PROBE_SCRIPT in a throwaway container on ``client``'s engine; with ``key`` (the
    runtime's probe_key: the same kernel and modules on every boot) a probe kept for that key is
    used instead, and a new one is kept (lab.kernel.probe_cache).

    /dev/net/tun and /dev/ppp are passed when the engine host has them (a
    missing node makes the engine refuse the container: we retry without it);
    ``c 108:0`` is allowed in the device cgroup so the script can mknod and open
    a PPP node itself, telling "kernel lacks PPP" from "host lacks /dev/ppp".
    """
    import docker.errors
    import requests.exceptions

    from lab.kernel import probe_cache

    kept = probe_cache.cache_path(key, PROBE_SCRIPT) if key else None
    if kept is not None and (features := probe_cache.load(kept)) is not None:
        return features
    devices = ["/dev/net/tun", "/dev/ppp"]
    for _attempt in range(len(devices) + 1):
        container = None
        try:
            container = client.containers.create(
                image,
                entrypoint=["/bin/sh", "-c", PROBE_SCRIPT],
                user="0",
                network_disabled=True,  # own namespace with only lo; skips libnetwork (fast in a UML guest)
                cap_add=["NET_ADMIN"],
                devices=[f"{d}:{d}:rwm" for d in devices],
                device_cgroup_rules=["c 10:200 rwm", "c 108:0 rwm"],
                labels=dict(PROBE_LABELS),
                detach=True,
            )
            container.start()
            try:
                result = container.wait(timeout=timeout)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as e:
                raise PrerequisiteError(
                    "kernel probe", f"no answer from the probe container within {timeout:.0f} s ({e})"
                ) from e
            text = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
            features = parse_probe(text)
            if not features.complete:
                err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
                raise PrerequisiteError(
                    "kernel probe",
                    f"probe stopped early (exit {result.get('StatusCode')}): {err.strip()[-500:]}",
                )
            if kept is not None:
                probe_cache.save(kept, text)
            return features
        except docker.errors.ImageNotFound as e:
            raise ImageError(image, "not present on the engine", hint="build the images first") from e
        except docker.errors.APIError as e:
            dropped = [d for d in devices if _is_device_error(e, d)]
            if not dropped:
                raise PrerequisiteError("kernel probe", f"the engine refused the probe container: {e}") from e
            devices = [d for d in devices if d not in dropped]
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except docker.errors.APIError:
                    pass
    raise PrerequisiteError("kernel probe", "the engine refused the probe container's devices")
