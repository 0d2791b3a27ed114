"""Teardown goes to the end: an object that will not go is reported once, after every other removal."""

from __future__ import annotations

import docker.errors
import pytest
import requests

from lab.runtime.lab import TeardownError, remove_labelled


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(f"{status} error", response, explanation=explanation)


class Thing:
    def __init__(self, engine: "Engine", kind: str, name: str, error: Exception | None = None):
        self.engine, self.kind, self.name, self.error = engine, kind, name, error
        self.attrs = {"Names": [f"/{name}"]} if kind == "container" else {}
        self.short_id = name[:12]

    def remove(self, **_options: object) -> None:
        if isinstance(self.error, docker.errors.NotFound):
            self.engine.things.remove(self)  # gone between the list and the removal
        error = self.error
        if isinstance(error, docker.errors.APIError) and error.status_code == 409:
            self.error = None  # the removal in progress ends before the next round
        if error is not None:
            raise error
        self.engine.things.remove(self)


class Listing:
    def __init__(self, engine: "Engine", kind: str):
        self.engine, self.kind = engine, kind

    def list(self, **_filters: object) -> list[Thing]:
        return [t for t in self.engine.things if t.kind == self.kind]


class Engine:
    """Holds a lab's containers, networks and volumes; the ``stuck`` ones refuse to go."""

    def __init__(self, stuck: dict[str, Exception]):
        self.things = [
            Thing(self, kind, name, stuck.get(name))
            for kind, names in {"container": ["a", "b", "c", "d"], "network": ["n1", "n2"], "volume": ["v1"]}.items()
            for name in names
        ]
        self.containers, self.networks, self.volumes = (Listing(self, k) for k in ("container", "network", "volume"))


def test_a_removal_that_fails_does_not_skip_the_others_and_is_reported_at_the_end() -> None:
    engine = Engine({"b": api_error(500, "device or resource busy"), "n1": api_error(403, "has active endpoints")})
    with pytest.raises(TeardownError) as raised:
        remove_labelled(engine, {"label": "vpnlab.lab=t"})  # type: ignore[arg-type]
    assert sorted(t.name for t in engine.things) == ["b", "n1"]  # every other object went
    assert raised.value.removed == 5
    assert raised.value.failures == ["container b: device or resource busy", "network n1: has active endpoints"]
    assert raised.value.exit_code != 0


def test_gone_already_and_in_progress_are_not_failures() -> None:
    engine = Engine({"a": docker.errors.NotFound("gone"), "b": api_error(409, "removal in progress"),
                     "v1": docker.errors.NotFound("gone")})
    assert remove_labelled(engine, {"label": "vpnlab.lab=t"}) == 5  # type: ignore[arg-type]
    assert engine.things == []
