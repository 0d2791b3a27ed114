"""Choosing a runtime: the one auto policy, on fake runtimes (no Docker, no guest)."""

from __future__ import annotations

from typing import Any

import pytest

from lab.errors import VpnlabError
from lab.runtime.base import Runtime
from lab.runtime.registry import choose_runtime
from lab.runtime.uml import Slot, state_dir

PPP = "PPP (ppp_generic, /dev/ppp)"


class Fake(Runtime):
    opened = False

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return cls.usable, cls.why

    def open(self, progress: Any = None) -> None:
        type(self).opened = True

    def close(self, keep: bool = False) -> None:
        pass

    @property
    def client(self) -> Any:
        return None

    @property
    def engine_url(self) -> str:
        return "unix:///fake.sock"

    @classmethod
    def engines(cls, host: Any) -> list[Runtime]:
        return []


class FakeHost(Fake):
    name, title, short, description = "docker", "the host's Docker engine", "host", "host"
    usable, why = True, "here"


def full_kernel(usable: bool, why: str = "", name: str = "uml", short: str = "UML") -> type[Fake]:
    attrs = dict(name=name, title="a User-Mode Linux guest's engine", short=short, description=name,
                 full_kernel=True, usable=usable, why=why)
    return type(f"Fake{name}", (Fake,), attrs)


def registry(*extra: type[Fake]) -> dict[str, type[Runtime]]:
    return {"docker": FakeHost, **{cls.name: cls for cls in extra}}


def never() -> dict[str, list[str]]:
    raise AssertionError("a requested runtime must not probe the host kernel")


def test_auto_keeps_the_host_when_nothing_is_missing() -> None:
    chosen = choose_runtime("auto", lambda: {"wireguard": [], "openvpn-udp": []}, registry=registry(full_kernel(True)))
    assert chosen.name == "docker"
    assert chosen.reason == "auto: the host kernel has what every tunnel needs"


def test_auto_moves_to_an_available_full_kernel_and_names_what_is_missing() -> None:
    uml = full_kernel(True)
    chosen = choose_runtime("auto", lambda: {"pptp": [PPP], "wireguard": []}, registry=registry(uml))
    assert isinstance(chosen, uml)
    assert chosen.reason == "auto: the host kernel lacks features: pptp needs PPP (ppp_generic, /dev/ppp)"
    assert not uml.opened  # chosen, not started


def test_auto_stays_on_the_host_and_says_why_when_no_full_kernel_is_available() -> None:
    chosen = choose_runtime("auto", lambda: {"pptp": [PPP]}, registry=registry(full_kernel(False, "linux.uml is missing")))
    assert chosen.name == "docker"
    assert chosen.reason == ("auto: the host kernel lacks features: pptp needs PPP (ppp_generic, /dev/ppp); "
                             "no UML runtime (linux.uml is missing)")


def test_auto_tries_full_kernels_in_registry_order() -> None:
    qemu = full_kernel(True, name="qemu", short="QEMU")
    chosen = choose_runtime("auto", lambda: {"l2tp": ["L2TP"]}, registry=registry(full_kernel(False, "no"), qemu))
    assert isinstance(chosen, qemu)


def test_several_protocols_are_named_in_order() -> None:
    chosen = choose_runtime("auto", lambda: {"pptp": [PPP], "l2tp": ["L2TP", PPP]}, registry=registry())
    assert chosen.reason == (f"auto: the host kernel lacks features: l2tp needs L2TP; {PPP}, pptp needs {PPP}")


@pytest.mark.parametrize("choice, reason", [
    ("docker", "requested: the host's Docker engine"),
    ("uml", "requested: a User-Mode Linux guest's engine"),
])
def test_a_requested_runtime_is_taken_without_probing(choice: str, reason: str) -> None:
    chosen = choose_runtime(choice, never, registry=registry(full_kernel(False, "unavailable is the caller's problem")))
    assert chosen.name == choice and chosen.reason == reason


def test_the_real_registry_gives_the_same_reasons() -> None:
    assert choose_runtime("docker", never).reason == "requested: the host's Docker engine"
    assert choose_runtime("uml", never).reason == "requested: a User-Mode Linux guest's engine"


def test_an_unknown_runtime_is_one_clear_error() -> None:
    with pytest.raises(VpnlabError, match="unknown runtime 'qemu'"):
        choose_runtime("qemu", never, registry=registry())


def test_state_dir_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("VPNLAB_STATE_DIR", str(tmp_path))
    assert state_dir() == tmp_path
    monkeypatch.delenv("VPNLAB_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "vpnlab"


def test_a_slot_without_a_live_guest_is_stopped(tmp_path) -> None:
    slot = Slot(tmp_path, 0)
    assert slot.status() == "stopped" and not slot.running()
    (tmp_path / "guest.pid").write_text("999999999")  # no such process
    assert slot.guest_pid() is None
