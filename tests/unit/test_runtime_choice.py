"""Choosing a runtime: why auto moves a topology to the User-Mode Linux guest, in words."""

from __future__ import annotations

from lab.runtime.select import auto_reason
from lab.runtime.uml import Slot, state_dir


def test_auto_keeps_the_host_when_nothing_is_missing() -> None:
    assert auto_reason({"wireguard": [], "openvpn-udp": []}) == (False, "the host kernel has what every tunnel needs")


def test_auto_names_each_protocol_and_the_missing_feature() -> None:
    needs, why = auto_reason({"pptp": ["PPP (ppp_generic, /dev/ppp)"], "wireguard": []})
    assert needs is True
    assert why == "the host kernel lacks features: pptp needs PPP (ppp_generic, /dev/ppp)"


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
