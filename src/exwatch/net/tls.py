"""TLS client context for scanning and certificate capture.

The scanner talks to servers it does not trust and must not reject: certificates are not
verified (most Exchange servers found by address have self-signed or name-mismatched ones)
and old protocol versions stay enabled (Exchange 2010 on Server 2008 R2 may speak TLS 1.0
only).  With verification off `getpeercert()` is empty, so the DER form is parsed here with
`cryptography`.
"""

from __future__ import annotations

import hashlib
import ssl
import warnings
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

_OP_LEGACY_SERVER_CONNECT = getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
_MAX_SAN = 100  # a certificate may list thousands of names; the record keeps the first ones
_MAX_NAME_CHARS = 512

_context: ssl.SSLContext | None = None


def client_context() -> ssl.SSLContext:
    """The process-wide scanning context (created once: building contexts is costly)."""
    global _context
    if _context is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            # Deliberate: a census must also reach servers that only speak TLS 1.0.
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        # Level 0 lets old servers (SHA-1, small DH, TLS 1.0) finish the handshake we only
        # use to read a certificate and an HTTP response.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.options |= _OP_LEGACY_SERVER_CONNECT | ssl.OP_NO_COMPRESSION
        _context = ctx
    return _context


def _utc(value: datetime) -> str:
    # isoformat is several times cheaper than strftime; the values are UTC already.
    return value.isoformat(timespec="seconds")[:19] + "Z"


def _name(name: x509.Name) -> str:
    return name.rfc4514_string()[:_MAX_NAME_CHARS]


def _common_name(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    text = value if isinstance(value, str) else value.decode("latin-1")
    return text[:_MAX_NAME_CHARS]


def _san(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    # Exact type checks: isinstance on the GeneralName ABCs costs several times more, and
    # a certificate may list thousands of names.
    names: list[str] = []
    for general in ext.value:
        kind = type(general)
        if (
            kind is x509.DNSName
            or kind is x509.UniformResourceIdentifier
            or kind is x509.RFC822Name
        ):
            names.append(general.value[:_MAX_NAME_CHARS])
        elif kind is x509.IPAddress:
            names.append(str(general.value))
        if len(names) >= _MAX_SAN:
            break
    return names


_cache: dict[bytes, dict[str, Any]] = {}
_CACHE_MAX = 1024


def certificate_fields(der: bytes) -> dict[str, Any]:
    """Subject, issuer, SAN, validity and SHA-256 of a DER certificate.

    Never raises: a certificate cryptography cannot parse keeps its fingerprint and a
    `parse_error`.  Results are cached by fingerprint because one organisation's many
    addresses (and every load-balanced server) present the same certificate.
    """
    digest = hashlib.sha256(der).digest()
    cached = _cache.get(digest)
    if cached is not None:
        return cached
    fields: dict[str, Any] = {
        "subject_cn": None,
        "subject": None,
        "issuer": None,
        "san": [],
        "not_before": None,
        "not_after": None,
        "sha256": digest.hex(),
    }
    try:
        cert = x509.load_der_x509_certificate(der)
        fields["subject_cn"] = _common_name(cert.subject)
        subject, issuer = cert.subject, cert.issuer
        fields["subject"] = _name(subject)
        # Most certificates found by address are self-signed: render the name once.
        same = subject.public_bytes() == issuer.public_bytes()
        fields["issuer"] = fields["subject"] if same else _name(issuer)
        fields["not_before"] = _utc(cert.not_valid_before_utc)
        fields["not_after"] = _utc(cert.not_valid_after_utc)
        fields["san"] = _san(cert)
    except Exception as exc:  # any malformed field: keep what was read, say why
        fields["parse_error"] = f"{type(exc).__name__}: {exc}"[:200]
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[digest] = fields
    return fields


def session_info(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any] | None:
    """The record's `tls` object for an established TLS session (None when not TLS)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    info: dict[str, Any] = {
        "version": ssl_object.version(),
        "cipher": cipher[0] if cipher else None,
    }
    if der:
        info.update(certificate_fields(der))
    else:
        info.update(
            subject_cn=None,
            subject=None,
            issuer=None,
            san=[],
            not_before=None,
            not_after=None,
            sha256=None,
        )
    return info


__all__ = ["certificate_fields", "client_context", "session_info"]
