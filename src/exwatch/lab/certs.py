"""Certificates for the simulated hosts: one key shared by all, one certificate per host.

The key is RSA 2048 (exponent 65537) because that is what real Exchange servers show:
New-ExchangeCertificate makes one, and nearly all bought certificates for Exchange are
one; a scanner measured against the lab then pays for the same handshakes.  Sharing the
key keeps a lab of thousands of hosts quick to build (an RSA key takes tens of ms to
generate, a SHA-256 signature well under a ms); each host still shows its own subject
and SANs, like real servers (an Exchange default certificate names the server, a bought
one the mail domain).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(2034, 1, 1, tzinfo=datetime.UTC)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def self_signed(
    key: rsa.RSAPrivateKey, common_name: str, sans: tuple[str, ...], ip: str, serial: int
) -> bytes:
    """A self-signed server certificate (PEM) naming `common_name`, the SANs and the address."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt: list[x509.GeneralName] = [x509.DNSName(s) for s in sans]
    alt.append(x509.IPAddress(ipaddress.IPv4Address(ip)))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
