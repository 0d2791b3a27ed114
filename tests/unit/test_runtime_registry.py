"""The runtime registry and where the host's engine is (DOCKER_HOST, Docker contexts): no Docker needed."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import pytest

from lab.errors import DockerUnavailable
from lab.runtime.base import Runtime
from lab.runtime.engine import DEFAULT_SOCKET, host_endpoint
from lab.runtime.host import HostRuntime
from lab.runtime.registry import AUTO, CHOICES, HOST, RUNTIMES, choices_help
from lab.runtime.uml_runtime import UmlRuntime


def test_the_registry_names_each_runtime_by_its_own_name() -> None:
    assert RUNTIMES == {"docker": HostRuntime, "uml": UmlRuntime}
    assert HOST == "docker" and CHOICES == (AUTO, "docker", "uml")
    for name, cls in RUNTIMES.items():
        assert cls.name == name and issubclass(cls, Runtime) and not inspect.isabstract(cls)
        assert cls.title and cls.short and cls.description and cls.concurrency > 0


def test_only_full_kernel_runtimes_are_candidates_for_auto() -> None:
    assert [n for n, cls in RUNTIMES.items() if cls.full_kernel] == ["uml"]
    assert HostRuntime.concurrency == 8 and UmlRuntime.concurrency == 3  # the guest has one CPU


def test_help_names_every_registered_runtime() -> None:
    text = choices_help()
    for name, cls in RUNTIMES.items():
        assert f"'{name}' ({cls.description})" in text


def test_a_runtime_is_chosen_without_side_effects() -> None:
    runtime = UmlRuntime("requested")
    runtime.close()  # never opened: nothing to do
    with pytest.raises(RuntimeError):
        runtime.client


def write_context(config: Path, name: str, host: str) -> None:
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {},
                                                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))


def test_the_default_engine_is_the_local_socket(tmp_path: Path) -> None:
    assert host_endpoint({"DOCKER_CONFIG": str(tmp_path)}).url == DEFAULT_SOCKET


def test_docker_host_wins_over_a_context(tmp_path: Path) -> None:
    write_context(tmp_path, "other", "unix:///other.sock")
    env = {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "other", "DOCKER_HOST": "unix:///mine.sock"}
    assert host_endpoint(env).url == "unix:///mine.sock"


def test_docker_context_names_the_engine(tmp_path: Path) -> None:
    write_context(tmp_path, "other", "unix:///other.sock")
    endpoint = host_endpoint({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "other"})
    assert endpoint.url == "unix:///other.sock" and endpoint.context == "other"
    assert endpoint.label == "unix:///other.sock (Docker context 'other')"


def test_the_current_context_in_the_config_names_the_engine(tmp_path: Path) -> None:
    write_context(tmp_path, "other", "tcp://198.51.100.7:2375")
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "other"}))
    assert host_endpoint({"DOCKER_CONFIG": str(tmp_path)}).url == "tcp://198.51.100.7:2375"
    assert host_endpoint({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "default"}).url == DEFAULT_SOCKET


def test_a_missing_context_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DockerUnavailable, match="Docker context 'nowhere': not found"):
        host_endpoint({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "nowhere"})


def test_the_host_runtime_gives_the_cli_the_address_it_was_made_from(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/second/docker.sock")
    assert HostRuntime("requested").engine_url == "unix:///tmp/second/docker.sock"
    monkeypatch.delenv("DOCKER_HOST")
    write_context(tmp_path, "second", "unix:///tmp/second/docker.sock")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("DOCKER_CONTEXT", "second")
    assert HostRuntime("requested").engine_url == "unix:///tmp/second/docker.sock"
