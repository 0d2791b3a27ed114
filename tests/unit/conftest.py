"""Unit-test helpers: fixed credentials so rendered files are stable, and golden-file comparison."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab.credentials import KeyPair, LabSecrets, TlsIdentity

HERE = Path(__file__).parent
UPDATE = os.environ.get("VPNLAB_UPDATE_GOLDEN") == "1"


class FixedSecrets(LabSecrets):
    """Stand-in credentials whose text names their owner, so golden files never change."""

    def wireguard(self, node: str) -> KeyPair:
        return KeyPair(f"PRIVATE-KEY-OF-{node}", f"PUBLIC-KEY-OF-{node}")

    def tls(self, node: str, *, server: bool, san_ips: tuple[str, ...] = ()) -> TlsIdentity:
        return TlsIdentity(f"CERT-OF-{node}\n", f"KEY-OF-{node}\n")

    def openvpn_tls_crypt(self, server: str) -> str:
        return f"TLS-CRYPT-KEY-OF-{server}\n"

    def password(self, name: str) -> str:
        return f"PASSWORD-OF-{name}"

    @property
    def ca(self):  # type: ignore[override]
        class _Ca:
            cert_pem = "CA-CERT\n"

        return _Ca()


def compare_golden(path: Path, actual: str) -> None:
    __tracebackhide__ = True
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"golden file {path} is missing; run with VPNLAB_UPDATE_GOLDEN=1 to create it", pytrace=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    expected = path.read_text()
    assert actual == expected, f"{path} differs (VPNLAB_UPDATE_GOLDEN=1 rewrites it after review)"
