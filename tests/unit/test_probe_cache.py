"""The kernel probe kept for a guest's next boot: read back as probed, a cut or foreign file
probed again, nothing kept without a key, and a kept probe starts no container."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lab.kernel import probe_cache
from lab.kernel.probe import PROBE_SCRIPT, probe_engine_kernel

from .test_kernel import FULL


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VPNLAB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


class Refusing:
    """An engine that must not be asked: a kept probe starts no container."""

    @property
    def containers(self) -> object:
        raise AssertionError("the probe ran although it was kept")


def test_a_kept_probe_reads_back_as_probed_and_starts_no_container(state: Path) -> None:
    path = probe_cache.cache_path("uml|kernel", PROBE_SCRIPT)
    assert probe_cache.load(path) is None  # nothing kept yet
    probe_cache.save(path, FULL)
    assert path.parent == state / "probes" and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not [p for p in path.parent.iterdir() if p != path]
    features = probe_engine_kernel(Refusing(), "vpnlab/client:latest", key="uml|kernel")  # type: ignore[arg-type]
    assert features.release == "6.1.176" and features.available("ppp") and features.available("netem")


def test_another_kernel_or_probe_script_is_another_file(state: Path) -> None:
    first = probe_cache.cache_path("uml|kernel", PROBE_SCRIPT)
    assert first != probe_cache.cache_path("uml|other-kernel", PROBE_SCRIPT)
    assert first != probe_cache.cache_path("uml|kernel", PROBE_SCRIPT + "\n# a new check")


def test_a_cut_probe_or_a_link_in_its_place_is_probed_again(state: Path, tmp_path: Path) -> None:
    path = probe_cache.cache_path("k", PROBE_SCRIPT)
    probe_cache.save(path, FULL.replace("end=yes\n", ""))  # a probe that stopped early
    assert probe_cache.load(path) is None
    target = tmp_path / "planted"
    target.write_text(FULL)
    path.unlink()
    os.symlink(target, path)
    assert probe_cache.load(path) is None  # never read through a link
    probe_cache.save(path, FULL.replace("6.1.176", "6.1.177"))  # nor written through one: the link is replaced
    assert target.read_text() == FULL and not path.is_symlink()
    assert probe_cache.load(path).release == "6.1.177"  # type: ignore[union-attr]


def test_without_a_key_the_engine_is_probed(state: Path) -> None:
    with pytest.raises(AssertionError, match="the probe ran"):
        probe_engine_kernel(Refusing(), "vpnlab/client:latest")  # type: ignore[arg-type]
    assert not (state / "probes").exists()


def test_a_kept_probe_this_user_did_not_write_is_probed_again(state: Path) -> None:
    path = probe_cache.cache_path("k", PROBE_SCRIPT)
    probe_cache.save(path, FULL)
    os.chown(path, 12345, -1)  # as if another user had put it there
    assert probe_cache.load(path) is None


def test_a_guest_boot_with_a_module_missing_is_not_keyed() -> None:
    from lab.runtime.uml_runtime import UmlRuntime

    class Guest:
        def client(self) -> object:
            return object()

        def modules_failed(self) -> list[str]:
            return ["ppp_generic"]

    assert UmlRuntime("test", None, guest=Guest()).probe_key() is None  # type: ignore[arg-type]
