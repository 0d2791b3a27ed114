"""Bringing a lab up on a Docker engine and taking it down again.

Everything a lab creates carries the ``vpnlab.lab`` label, and the ``vpnlab.run`` label of the
``up`` that made it; ``down`` removes by the first, the clean-up after a failed or interrupted
``up`` by both (only what that ``up`` made), whatever state things were left in. Who may touch
a lab of a name at all is settled first by lab.runtime.lab_lock.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import docker
import docker.errors
from docker.models.containers import Container

from lab import __version__
from lab.errors import LabExistsError, LabNotFound, LabRuntimeError, NodeNotFound, VpnlabError
from lab.images import image_tag
from lab.node_files import CONF_DIR, NodeFile
from lab.runtime.bounded_exec import ExecStream, bounded_exec
from lab.runtime.engine import (
    LABEL_HASH,
    LABEL_LAB,
    LABEL_NODE,
    LABEL_OWNER,
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_SOURCE,
    LABEL_VERSION,
    container_name,
    lab_filter,
)
from lab.runtime.files import copy_files, read_file
from lab.runtime.lab_lock import LabInUse, owner_alive, release
from lab.runtime.owed import owe, settle
from lab.runtime.uninterrupted import Cancelled, finish_first

if TYPE_CHECKING:  # pragma: no cover
    from lab.nodes import NodeSpec
    from lab.plan import LabPlan
    from lab.topology.model import Topology

T = TypeVar("T")
SWITCH = "switch"
TOPOLOGY_FILE = f"{CONF_DIR}/topology.json"


def topology_hash(topology: Topology) -> str:
    canonical = json.dumps(topology.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parallel(fn: Callable[[T], Any], items: Iterable[T], limit: int = 8) -> list[Any]:
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(limit, len(items))) as pool:
        return list(pool.map(fn, items))


@dataclass
class ExecResult:
    node: str
    command: str
    exit_code: int
    output: str

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


class DockerLab:
    """One lab on one engine, addressed by its name."""

    def __init__(self, client: docker.DockerClient, name: str, concurrency: int = 8):
        self.client = client
        self.name = name
        # Engine calls made at once while bringing the lab up: a one-CPU UML guest's
        # engine stopped answering when nine containers were started together.
        self.concurrency = concurrency
        self.run_id = uuid.uuid4().hex[:12]  # labels what this object's 'up' creates

    # --- lookup -------------------------------------------------------------

    def containers(self) -> list[Container]:
        return self.client.containers.list(all=True, filters=lab_filter(self.name))

    def exists(self) -> bool:
        return bool(self.containers())

    def container(self, node: str) -> Container:
        found = self.client.containers.list(
            all=True, filters={"label": [f"{LABEL_LAB}={self.name}", f"{LABEL_NODE}={node}"]}
        )
        if not found:
            if not self.exists():
                raise LabNotFound(self.name)
            known = [c.labels.get(LABEL_NODE, "?") for c in self.containers()]
            raise NodeNotFound(self.name, node, [k for k in known if k != SWITCH])
        return found[0]

    def topology(self) -> Topology:
        """The topology a running lab was made from (kept inside its router node, found by role)."""
        # by node name too: a double-NAT lab's upstream router has the router's role (and image)
        found = self.client.containers.list(
            all=True, filters={"label": [f"{LABEL_LAB}={self.name}", f"{LABEL_ROLE}=router", f"{LABEL_NODE}=router"]}
        )
        if not found:
            raise LabNotFound(self.name)
        from lab.topology.model import Topology  # pydantic: only where a topology is read

        return Topology.model_validate_json(read_file(found[0], TOPOLOGY_FILE))

    # --- exec ---------------------------------------------------------------

    def exec(
        self, node: str, command: str | list[str], *, container: Container | None = None, timeout: float | None = None
    ) -> ExecResult:
        """Run ``command`` in ``node``; with ``timeout``, ExecTimeout once that many seconds pass
        (without one, the output is waited for as long as it takes: see lab.runtime.bounded_exec)."""
        target = container or self.container(node)
        cmd = ["sh", "-c", command] if isinstance(command, str) else command
        if timeout is None:
            exit_code, output = target.exec_run(cmd, demux=False)
        else:
            exit_code, output = bounded_exec(self.client.api, target.id, node, cmd, timeout)
        text = (output or b"").decode(errors="replace")
        return ExecResult(node, command if isinstance(command, str) else " ".join(command), exit_code or 0, text)

    # --- up / down ----------------------------------------------------------


    def stream(self, node: str, cmd: list[str]) -> ExecStream:
        """Start ``cmd`` in ``node`` and read its output as it comes (bound its life in ``cmd`` itself)."""
        return ExecStream(self.client.api, self.container(node).id, cmd)

    def prepare(self, topology: Topology, owner: str) -> bool:
        """Decide what to do with an existing lab of this name, the name's lock held (see
        lab.runtime.lab_lock); True means it is already up. A lab kept by 'up' is reused by an
        'up' of the same topology and refused to anything else; a lab whose run is alive is
        refused (even half made); one whose run died, or a broken kept one an 'up' rebuilds, goes."""
        existing = self.containers()
        if not existing:
            return False
        labels = existing[0].labels
        same = labels.get(LABEL_HASH) == topology_hash(topology)
        running = all(c.status == "running" for c in existing)
        source = labels.get(LABEL_SOURCE, "?")
        holders = {c.labels.get(LABEL_OWNER, "up") for c in existing}
        if "up" in holders:
            if owner == "up" and same and running:
                return True
            if owner == "up" and running:
                raise LabExistsError(self.name, source)
            if owner != "up":
                raise LabInUse(self.name, f"it is kept up by 'vpnlab up' ({source})")
        live = sorted(h for h in holders if h != "up" and owner_alive(h))
        if live:
            raise LabInUse(self.name, f"it is held by {live[0]} ({source})")
        self._remove(lab_filter(self.name))  # stale: left by a killed run, or a kept lab that broke
        return False

    def up(self, spec: LabPlan, *, owner: str, source: str, progress: Callable[[str], None] = lambda _: None) -> None:
        """Create, wire and set up every node; on any failure (or Ctrl-C) remove what this 'up' made.

        The engine calls run to their end (see lab.runtime.uninterrupted): an interrupt stops the
        work between calls, so every container made is one the clean-up can list."""
        owe(self.run_id, lambda: remove_labelled(self.client, self._own_filter()))
        try:
            finish_first(lambda cancel: self._up(spec, owner=owner, source=source, progress=progress, cancel=cancel))
        except BaseException:
            try:
                self._remove(self._own_filter())
            except TeardownError:
                pass  # the failure that stopped 'up' is the one to report; 'vpnlab status' shows what is left
            else:
                settle(self.run_id)
            raise
        if owner == "up":
            settle(self.run_id)  # kept on purpose: 'vpnlab down' removes it

    def _own_filter(self) -> dict[str, Any]:
        return {"label": [f"{LABEL_LAB}={self.name}", f"{LABEL_RUN}={self.run_id}"]}

    def _up(self, spec: LabPlan, *, owner: str, source: str, progress: Callable[[str], None],
            cancel: threading.Event) -> None:
        def step(text: str) -> None:
            if cancel.is_set():
                raise Cancelled()
            progress(text)

        base_labels = {
            LABEL_LAB: self.name,
            LABEL_HASH: topology_hash(spec.topology),
            LABEL_OWNER: owner,
            LABEL_RUN: self.run_id,
            LABEL_SOURCE: source,
            LABEL_VERSION: __version__,
        }
        step("creating containers")
        topology_file = NodeFile(TOPOLOGY_FILE, spec.topology.model_dump_json(indent=2))
        switch = self._create_switch(base_labels)
        nodes = {n.name: n for n in spec.nodes}

        def create(node: NodeSpec) -> Container:
            if cancel.is_set():
                raise Cancelled()
            container = self._create_node(node, base_labels)
            files = node.files + [NodeFile(f"{CONF_DIR}/setup.sh", node.setup_script(), 0o755)]
            if node.name == spec.router.name:  # not the upstream router of a double NAT
                files.append(topology_file)
            copy_files(container, files)
            return container

        containers = dict(zip(nodes, parallel(create, nodes.values(), self.concurrency)))
        step("starting containers")
        parallel(lambda c: c.start(), [switch, *containers.values()], self.concurrency)
        pids = {}
        for name, container in containers.items():
            container.reload()
            pids[name] = int(container.attrs["State"]["Pid"])

        step("wiring LAN and WAN")
        from lab.runtime.wiring import plan_ports, wiring_script

        wired = self.exec(SWITCH, wiring_script(plan_ports(spec.nodes, pids)), container=switch)
        if not wired.succeeded:
            raise LabRuntimeError(SWITCH, "wiring", wired.output)

        step("configuring router and servers")
        results = parallel(
            lambda name: self.exec(name, f"sh {CONF_DIR}/setup.sh", container=containers[name]),
            containers,
            self.concurrency,
        )
        for result in results:
            if not result.succeeded:
                raise LabRuntimeError(result.node, "setup", result.output)

    def _create_switch(self, labels: dict[str, str]) -> Container:
        return self.client.containers.create(
            image_tag("router"),
            name=container_name(self.name, SWITCH),
            hostname=SWITCH,
            command=["sleep", "infinity"],
            init=True,
            network_disabled=True,
            pid_mode="host",  # to name each node's network namespace by its PID
            cap_drop=["ALL"],
            cap_add=["NET_ADMIN"],
            labels={**labels, LABEL_NODE: SWITCH, LABEL_ROLE: SWITCH},
        )

    def _create_node(self, node: NodeSpec, labels: dict[str, str]) -> Container:
        from lab.nodes import DROPPED_CAPS
        try:
            return self.client.containers.create(
                image_tag(node.role),
                name=container_name(self.name, node.name),
                hostname=node.name,
                command=["sleep", "infinity"],
                init=True,
                # No Docker networking at all (own namespace with only lo): vpnlab wires the
                # links. Unlike network_mode="none" it skips libnetwork's prestart hook,
                # which re-executes dockerd per container (5 s instead of 1.3 s in a UML guest).
                network_disabled=True,
                cap_add=node.cap_add,
                cap_drop=DROPPED_CAPS,
                devices=[f"{d}:{d}:rwm" for d in node.devices],
                sysctls=node.sysctls or None,
                labels={**labels, LABEL_NODE: node.name, LABEL_ROLE: node.role},
            )
        except docker.errors.APIError as exc:
            raise LabRuntimeError(node.name, "create", str(exc.explanation or exc)) from None

    def down(self) -> int:
        """Remove every container, network and volume labelled with this lab (to the end, Ctrl-C or
        not: see lab.runtime.uninterrupted); returns the count. This process's hold on the name goes too."""
        try:
            removed = self._remove(lab_filter(self.name))
        finally:
            release(self.client, self.name)
        settle(self.run_id)
        return removed

    def _remove(self, filters: dict[str, Any]) -> int:
        return finish_first(lambda _: remove_labelled(self.client, filters))


class TeardownError(VpnlabError):
    """Objects a teardown could not remove; raised once it has tried every one of them."""

    def __init__(self, removed: int, failures: list[str]):
        self.removed = removed
        self.failures = list(failures)
        super().__init__(
            f"removed {removed} object(s) but could not remove {len(self.failures)}: " + "; ".join(self.failures),
            hint="run 'vpnlab down' again; 'vpnlab status' lists what is left",
        )


def remove_labelled(client: docker.DockerClient, filters: dict[str, Any], rounds: int = 5) -> int:
    """Remove every container, network and volume matching ``filters``; returns the count.

    Lists again after each round: a container whose create or start the engine was
    still finishing when the first list was taken (an interrupted ``up``) is caught by
    the next one. Sparse lists skip per-container inspection, which races with removal.
    An object that will not go does not stop the others: every removal is tried, then
    one TeardownError names what is left.
    """
    removed = 0
    failed: dict[str, str] = {}  # object -> why, the last round's word

    def attempt(what: str, remove: Callable[[], None], settled: tuple[int, ...] = (404,)) -> bool:
        """Whether ``remove`` removed it; a status in ``settled`` is no failure (404: gone already)."""
        try:
            remove()
        except docker.errors.APIError as exc:
            if not isinstance(exc, docker.errors.NotFound) and exc.status_code not in settled:
                failed[what] = f"{what}: {exc.explanation or exc}"
                return False
        except Exception as exc:  # noqa: BLE001 - reported at the end, after every other removal
            failed[what] = f"{what}: {exc}"
            return False
        else:
            failed.pop(what, None)
            return True
        failed.pop(what, None)
        return False

    def remove_container(container: Container) -> bool:
        names = container.attrs.get("Names") or [container.name or container.short_id]  # a sparse list's
        # 409: "removal already in progress", the next round's list tells
        return attempt(f"container {names[0].lstrip('/')}", lambda: container.remove(force=True, v=True), (404, 409))

    for _ in range(rounds):
        containers = client.containers.list(all=True, filters=filters, sparse=True)
        if not containers:
            break
        removed += sum(parallel(remove_container, containers))
        if failed and len(failed) == len(containers):
            break  # nothing moved this round: the rest will not go by asking again
    for network in client.networks.list(filters=filters):
        removed += attempt(f"network {network.name}", network.remove)
    for volume in client.volumes.list(filters=filters):
        removed += attempt(f"volume {volume.name}", lambda v=volume: v.remove(force=True))
    if failed:
        raise TeardownError(removed, sorted(failed.values()))
    return removed


def remove_each(removals: list[Callable[[], int]]) -> int:
    """Run every removal (each returns a count or raises TeardownError); the total, or after the
    last of them one TeardownError with everything left behind."""
    removed, left = 0, []
    for removal in removals:
        try:
            removed += removal()
        except TeardownError as exc:
            removed += exc.removed
            left += exc.failures
    if left:
        raise TeardownError(removed, left)
    return removed


@dataclass
class LabStatus:
    name: str
    source: str
    owner: str
    nodes: dict[str, str]  # node -> container status


def list_labs(client: docker.DockerClient) -> list[LabStatus]:
    labs: dict[str, LabStatus] = {}
    for container in client.containers.list(all=True, filters=lab_filter()):
        labels = container.labels
        name = labels.get(LABEL_LAB, "?")
        if labels.get("vpnlab.probe"):
            continue
        status = labs.setdefault(name, LabStatus(name, labels.get(LABEL_SOURCE, "?"), labels.get(LABEL_OWNER, "?"), {}))
        status.nodes[labels.get(LABEL_NODE, container.name)] = container.status
    return sorted(labs.values(), key=lambda s: s.name)


def holds_labs(client: docker.DockerClient) -> bool:
    """Whether this engine holds any vpnlab lab at all."""
    return bool(client.containers.list(all=True, filters=lab_filter()))


def down_all(client: docker.DockerClient) -> int:
    return remove_labelled(client, lab_filter())


__all__ = ["DockerLab", "ExecResult", "LabStatus", "TeardownError", "VpnlabError", "down_all", "list_labs", "topology_hash"]
