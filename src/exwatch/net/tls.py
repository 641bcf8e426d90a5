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
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from exwatch.net import der as _der
from exwatch.net.der import element, issuer_at

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


def _layout(der: bytes) -> tuple[bytes, bytes, bytes] | None:
    """The encoded issuer, validity and subject of a certificate `cryptography` has loaded
    (so its structure and times are sound), or None for a shape this walk does not expect."""
    try:
        pos, _ = issuer_at(der)
        parts: list[bytes] = []
        for _ in range(3):  # issuer, validity, subject: each a SEQUENCE
            if der[pos] != 0x30:
                return None
            end = element(der, pos)[1]
            parts.append(der[pos:end])
            pos = end
    except IndexError:
        return None
    return parts[0], parts[1], parts[2]


def _times(validity: bytes) -> tuple[str, str] | None:
    """notBefore and notAfter as `_utc` writes them, from the encoded Validity; None for
    forms left to `cryptography` (fractional seconds)."""
    out: list[str] = []
    pos = 2
    for _ in range(2):
        tag, size = validity[pos], validity[pos + 1]
        text = validity[pos + 2 : pos + 2 + size].decode("ascii")
        if tag == 0x17 and size == 13:  # UTCTime YYMMDDHHMMSSZ: 1950-2049 (RFC 5280)
            year = int(text[:2])
            year += 1900 if year >= 50 else 2000
            rest = text[2:]
        elif tag == 0x18 and size == 15:  # GeneralizedTime YYYYMMDDHHMMSSZ
            year, rest = int(text[:4]), text[4:]
        else:
            return None
        out.append(f"{year:04d}-{rest[0:2]}-{rest[2:4]}T{rest[4:6]}:{rest[6:8]}:{rest[8:10]}Z")
        pos += 2 + size
    return out[0], out[1]


# Rendered Names (common name, RFC 4514 text) by their encoding: issuers repeat across a
# fleet (a CA, an organisation's own), and so do the subjects of many self-signed servers.
_names: dict[bytes, tuple[str | None, str]] = {}
_cache: dict[bytes, dict[str, Any]] = {}
_CACHE_MAX = 1024


def _rendered(raw: bytes | None, name: Callable[[], x509.Name]) -> tuple[str | None, str]:
    found = _names.get(raw) if raw is not None else None
    if found is None:
        value = name()  # building cryptography's Name is most of a certificate's cost
        found = (_common_name(value), _name(value))
        if raw is not None:
            if len(_names) >= _CACHE_MAX:
                _names.clear()
            _names[raw] = found
    return found


def no_certificate_fields() -> dict[str, Any]:
    """The certificate part of a record when no certificate was seen (a fresh dict: the
    caller fills it)."""
    return {
        "subject_cn": None,
        "subject": None,
        "issuer": None,
        "san": [],
        "not_before": None,
        "not_after": None,
        "sha256": None,
    }


def certificate_fields(der: bytes) -> dict[str, Any]:
    """Subject, issuer, SAN, validity and SHA-256 of a DER certificate.

    Never raises: a certificate cryptography cannot parse keeps its fingerprint and a
    `parse_error`.  Results are cached by fingerprint because one organisation's many
    addresses (and every load-balanced server) present the same certificate, and the
    rendered names by their encoding (`_rendered`).
    """
    digest = hashlib.sha256(der).digest()
    cached = _cache.get(digest)
    if cached is not None:
        return cached
    fields = no_certificate_fields()
    fields["sha256"] = digest.hex()
    try:
        cert = x509.load_der_x509_certificate(der)  # validates the whole structure
        # The common shapes straight from the encoding; the rest through cryptography's
        # objects (the same text, at several times the cost).
        fast = _der.fields(der, _MAX_NAME_CHARS, _MAX_SAN)
        validity: bytes | None = None
        if fast is not None:
            fields["subject_cn"], fields["subject"], fields["issuer"], san, validity = fast
        else:
            layout = _layout(der)
            raw_issuer, raw_subject = (layout[0], layout[2]) if layout else (None, None)
            validity = layout[1] if layout else None
            fields["subject_cn"], subject = _rendered(raw_subject, lambda: cert.subject)
            # Most certificates found by address are self-signed: render the name once.
            if raw_subject is not None and raw_issuer == raw_subject:
                issuer = subject
            elif raw_subject is not None:
                issuer = _rendered(raw_issuer, lambda: cert.issuer)[1]
            else:
                same = cert.subject.public_bytes() == cert.issuer.public_bytes()
                issuer = subject if same else _name(cert.issuer)
            # Set together: an issuer that cannot be read leaves the subject unset too.
            fields["subject"], fields["issuer"] = subject, issuer
        times = _times(validity) if validity is not None else None
        if times is None:
            times = _utc(cert.not_valid_before_utc), _utc(cert.not_valid_after_utc)
        fields["not_before"], fields["not_after"] = times
        fields["san"] = san if fast is not None else _san(cert)
    except Exception as exc:  # any malformed field: keep what was read, say why
        fields["parse_error"] = f"{type(exc).__name__}: {exc}"[:200]
    _remember(digest, fields)
    return fields


def _remember(digest: bytes, fields: dict[str, Any]) -> None:
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[digest] = fields


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


__all__ = ["certificate_fields", "client_context", "no_certificate_fields", "session_info"]
