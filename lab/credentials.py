"""Keys, certificates and passwords made fresh for each lab; none are committed.

They live in memory while a lab comes up and are copied into the nodes that
need them; nothing is written on the host.
"""

from __future__ import annotations

import base64
import ipaddress
import datetime
import secrets as pysecrets
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class KeyPair:
    private: str
    public: str


@dataclass(frozen=True)
class TlsIdentity:
    cert_pem: str
    key_pem: str


def wireguard_keypair() -> KeyPair:
    key = x25519.X25519PrivateKey.generate()
    raw_private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    raw_public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KeyPair(base64.b64encode(raw_private).decode(), base64.b64encode(raw_public).decode())


def openvpn_static_key() -> str:
    """A 2048-bit key in OpenVPN's static key file format (for tls-crypt)."""
    body = pysecrets.token_hex(256)
    lines = [body[i : i + 32] for i in range(0, len(body), 32)]
    return "-----BEGIN OpenVPN Static key V1-----\n" + "\n".join(lines) + "\n-----END OpenVPN Static key V1-----\n"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class CertificateAuthority:
    """A throwaway CA, valid for a few days, that signs the lab's identities."""

    lab: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @cached_property
    def cert(self) -> x509.Certificate:
        now = datetime.datetime.now(datetime.timezone.utc)
        name = _name(f"vpnlab {self.lab} CA")
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, *, server: bool, san_ips: tuple[str, ...] = ()) -> TlsIdentity:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        alt_names: list[x509.GeneralName] = [x509.DNSName(common_name)]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in san_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return TlsIdentity(cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key))


class LabSecrets:
    """Per-lab secrets, made on first use and then reused for the same node."""

    def __init__(self, lab: str):
        self.lab = lab
        self._wireguard: dict[str, KeyPair] = {}
        self._tls: dict[str, TlsIdentity] = {}
        self._passwords: dict[str, str] = {}
        self._static: dict[str, str] = {}

    @cached_property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.lab)

    def wireguard(self, node: str) -> KeyPair:
        if node not in self._wireguard:
            self._wireguard[node] = wireguard_keypair()
        return self._wireguard[node]

    def tls(self, node: str, *, server: bool, san_ips: tuple[str, ...] = ()) -> TlsIdentity:
        if node not in self._tls:
            self._tls[node] = self.ca.issue(node, server=server, san_ips=san_ips)
        return self._tls[node]

    def password(self, name: str) -> str:
        if name not in self._passwords:
            self._passwords[name] = pysecrets.token_urlsafe(18)
        return self._passwords[name]

    def openvpn_tls_crypt(self, server: str) -> str:
        if server not in self._static:
            self._static[server] = openvpn_static_key()
        return self._static[server]
