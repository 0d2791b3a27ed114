"""Pure parts of lab.images: the content hash that decides rebuilds, and the registry. No Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import images
from lab.errors import ImageError

PARENT = "sha256:" + "a" * 64


def make_tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\n")
    (root / "bin" / "helper.sh").write_text("#!/bin/sh\necho hi\n")
    return root


def test_hash_is_stable_for_the_same_tree(tmp_path: Path) -> None:
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b")
    assert images.context_hash(a, PARENT) == images.context_hash(a, PARENT)
    assert images.context_hash(a, PARENT) == images.context_hash(b, PARENT)


def test_hash_changes_when_bytes_change(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    before = images.context_hash(tree, PARENT)
    (tree / "bin" / "helper.sh").write_text("#!/bin/sh\necho bye\n")
    assert images.context_hash(tree, PARENT) != before


def test_hash_changes_when_a_name_changes(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    before = images.context_hash(tree, PARENT)
    (tree / "bin" / "helper.sh").rename(tree / "bin" / "other.sh")
    assert images.context_hash(tree, PARENT) != before


def test_hash_changes_when_a_file_is_added(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    before = images.context_hash(tree, PARENT)
    (tree / "bin" / ".keep").write_bytes(b"")
    assert images.context_hash(tree, PARENT) != before


def test_hash_does_not_let_bytes_slide_between_files(tmp_path: Path) -> None:
    one = tmp_path / "one"
    two = tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a").write_bytes(b"xy")
    (one / "b").write_bytes(b"")
    (two / "a").write_bytes(b"x")
    (two / "b").write_bytes(b"y")
    assert images.context_hash(one, PARENT) != images.context_hash(two, PARENT)


def test_parent_id_participates(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert images.context_hash(tree, PARENT) != images.context_hash(tree, "sha256:" + "b" * 64)


def test_registry_builds_parents_first() -> None:
    names = [spec.name for spec in images.IMAGES]
    assert names == ["base", "router", "client", "server"]
    for index, spec in enumerate(images.IMAGES):
        assert spec.tag == f"vpnlab/{spec.name}:latest"
        if spec.parent is not None:
            assert spec.parent in names[:index]


def test_every_spec_has_a_dockerfile() -> None:
    for spec in images.IMAGES:
        assert (spec.context() / "Dockerfile").is_file(), spec.context()


def test_images_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPNLAB_IMAGES_DIR", str(tmp_path))
    assert images.images_dir() == tmp_path
    assert images.IMAGES[0].context() == tmp_path / "base"


def test_image_tag_for_roles() -> None:
    assert images.image_tag("router") == "vpnlab/router:latest"
    assert images.image_tag("client") == "vpnlab/client:latest"
    assert images.image_tag("server") == "vpnlab/server:latest"
    with pytest.raises(ImageError):
        images.image_tag("base")


def test_human_size() -> None:
    assert images.human_size(258_598_444) == "258.6 MB"


def test_the_debootstrap_base_is_verified_against_debians_keys(tmp_path: Path) -> None:
    argv = images.debootstrap_command("bookworm", tmp_path / "rootfs", images.DEBIAN_MIRROR)
    options, positional = argv[1:-3], argv[-3:]
    assert argv[0] == "debootstrap"
    assert f"--keyring={images.DEBIAN_KEYRING}" in options and "--force-check-gpg" in options
    assert "--no-check-gpg" not in argv
    assert positional == ["bookworm", str(tmp_path / "rootfs"), images.DEBIAN_MIRROR]


def test_the_installed_debootstrap_knows_the_verification_options() -> None:
    import shutil
    import subprocess

    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed")
    usage = subprocess.run(["debootstrap", "--help"], capture_output=True, text=True).stdout
    assert "--keyring=" in usage and "--force-check-gpg" in usage


def test_no_keyring_no_unverified_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import shutil

    from lab.errors import PrerequisiteError

    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip("the keyring check comes after the debootstrap and root checks")
    monkeypatch.setattr(images, "DEBIAN_KEYRING", tmp_path / "missing.gpg")
    with pytest.raises(PrerequisiteError, match="missing.gpg is missing") as raised:
        images.make_debian_base(None)  # type: ignore[arg-type]  # refused before any engine call
    assert "apt-get install debian-archive-keyring" in str(raised.value)
