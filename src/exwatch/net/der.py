"""A short DER reader for the certificate fields a record keeps: names, validity, SAN.

`cryptography` loads (and so validates) every certificate first; building its Name and
extension objects is then most of a certificate's cost (about 4x the load itself), and the
scanner sees a new certificate on nearly every host.  This reader renders the same text
straight from the encoding for the shapes servers use: single-valued RDNs of UTF8, Printable
or IA5 strings, and SAN entries that are DNS names, URIs, e-mail addresses or IP addresses.
Anything else (multi-valued RDNs, other string types, other SAN entry kinds, non-ASCII where
cryptography wants ASCII, a duplicate extension) returns None and the caller asks
`cryptography`, so every field is cryptography's own text (tests/scanner/test_der.py compares
the two on generated and mutated certificates).
"""

from __future__ import annotations

import ipaddress
import socket

# Attribute names cryptography writes in RFC 4514 text (x509.name._NAMEOID_TO_NAME), by the
# OID's encoded bytes; other OIDs are written dotted.
_SHORT_NAMES = {
    b"\x55\x04\x03": "CN",
    b"\x55\x04\x07": "L",
    b"\x55\x04\x08": "ST",
    b"\x55\x04\x0a": "O",
    b"\x55\x04\x0b": "OU",
    b"\x55\x04\x06": "C",
    b"\x55\x04\x09": "STREET",
    b"\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x19": "DC",
    b"\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x01": "UID",
}
_COMMON_NAME = b"\x55\x04\x03"
_SAN = b"\x55\x1d\x11"
_UTF8, _PRINTABLE, _IA5 = 0x0C, 0x13, 0x16
# GeneralName tags read here: rfc822Name [1], dNSName [2], URI [6] (IA5), iPAddress [7].
_SAN_TEXT = frozenset({0x81, 0x82, 0x86})
_SAN_IP = 0x87
# RFC 4514 escapes, as cryptography's _escape_dn_value writes them.
_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        '"': '\\"',
        "+": "\\+",
        ",": "\\,",
        ";": "\\;",
        "<": "\\<",
        ">": "\\>",
        "\0": "\\00",
    }
)
_SPECIAL = frozenset('\\"+,;<>\0')


class _Odd(Exception):
    """A shape this reader leaves to cryptography."""


def element(der: bytes, pos: int) -> tuple[int, int]:
    """(start of contents, end) of the DER element at `pos` (IndexError when cut short)."""
    size = der[pos + 1]
    pos += 2
    if size & 0x80:
        count = size & 0x7F
        if count == 0 or count > 4 or pos + count > len(der):
            raise IndexError("unsupported DER length")
        size = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    end = pos + size
    if end > len(der):
        raise IndexError("DER element runs past its container")
    return pos, end


def _dotted(oid: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in oid:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or oid[-1] & 0x80:
        raise _Odd
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def _escape(value: str) -> str:
    if not value:
        return ""
    if not _SPECIAL.isdisjoint(value):
        value = value.translate(_ESCAPES)
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


def _text(der: bytes, tag: int, start: int, end: int) -> str:
    raw = der[start:end]
    if tag == _UTF8:
        return raw.decode("utf-8")  # UnicodeDecodeError is a ValueError: caller's fallback
    if tag in (_PRINTABLE, _IA5) and raw.isascii():
        return raw.decode("ascii")
    raise _Odd


def name(der: bytes, start: int, end: int) -> tuple[str | None, str]:
    """(first common name, RFC 4514 text) of the Name whose contents are der[start:end]."""
    common: str | None = None
    parts: list[str] = []
    pos = start
    while pos < end:
        # RDN: a SET holding exactly one AttributeTypeAndValue SEQUENCE {OID, value}.
        rdn_start, rdn_end = element(der, pos)
        if der[pos] != 0x31 or rdn_end > end or der[rdn_start] != 0x30:
            raise _Odd
        atv_start, atv_end = element(der, rdn_start)
        if atv_end != rdn_end or der[atv_start] != 0x06:
            raise _Odd
        oid_start, oid_end = element(der, atv_start)
        value_start, value_end = element(der, oid_end)
        if value_end != atv_end:
            raise _Odd
        oid = der[oid_start:oid_end]
        value = _text(der, der[oid_end], value_start, value_end)
        if common is None and oid == _COMMON_NAME:
            common = value
        label = _SHORT_NAMES.get(oid) or _dotted(oid)
        parts.append(f"{label}={_escape(value)}")
        pos = rdn_end
    parts.reverse()  # RFC 4514: last RDN first
    return common, ",".join(parts)


def _san_value(der: bytes, start: int, end: int) -> tuple[int, int] | None:
    """Contents of the SAN's GeneralNames SEQUENCE, from the extensions' contents; refuses
    what cryptography refuses about the list (a duplicate extension, a misshapen one)."""
    seen: set[bytes] = set()
    found: tuple[int, int] | None = None
    pos = start
    while pos < end:
        # Extension: SEQUENCE {OID, critical BOOLEAN DEFAULT FALSE, OCTET STRING}.
        ext_start, ext_end = element(der, pos)
        if der[pos] != 0x30 or ext_end > end or der[ext_start] != 0x06:
            raise _Odd
        oid_start, oid_end = element(der, ext_start)
        inner = oid_end
        if der[inner] == 0x01:
            inner = element(der, inner)[1]
        value_start, value_end = element(der, inner)
        if der[inner] != 0x04 or value_end != ext_end:
            raise _Odd
        oid = der[oid_start:oid_end]
        if oid in seen:
            raise _Odd  # cryptography refuses duplicate extensions
        seen.add(oid)
        if oid == _SAN:
            found = value_start, value_end
        pos = ext_end
    if found is None:
        return None
    seq_start, seq_end = element(der, found[0])
    if der[found[0]] != 0x30 or seq_end != found[1]:
        raise _Odd
    return seq_start, seq_end


def subject_alt_names(der: bytes, extensions: tuple[int, int] | None, limit: int) -> list[str]:
    """The SAN entries (at most `limit`) from the extensions' contents der[start:end]."""
    found = None if extensions is None else _san_value(der, *extensions)
    if found is None:
        return []
    names: list[str] = []
    pos, end = found
    while pos < end:
        tag = der[pos]
        start, stop = element(der, pos)
        if stop > end:
            raise _Odd
        raw = der[start:stop]
        if tag in _SAN_TEXT:
            if not raw.isascii():
                raise _Odd
            text = raw.decode("ascii")
        elif tag == _SAN_IP and len(raw) == 4:
            text = socket.inet_ntoa(raw)  # ipaddress's text for IPv4, at a tenth of the cost
        elif tag == _SAN_IP and len(raw) == 16:
            text = str(ipaddress.IPv6Address(raw))
        else:
            raise _Odd
        if len(names) < limit:
            names.append(text)
        pos = stop
    return names


def issuer_at(der: bytes) -> tuple[int, int]:
    """(where the issuer Name starts, where the TBSCertificate ends) in a certificate
    (IndexError when it is cut short)."""
    start, _ = element(der, 0)  # Certificate
    pos, tbs_end = element(der, start)  # TBSCertificate
    if der[pos] == 0xA0:  # [0] version
        pos = element(der, pos)[1]
    pos = element(der, pos)[1]  # serialNumber
    pos = element(der, pos)[1]  # signature
    return pos, tbs_end


# subject CN, subject, issuer, SAN, and the encoded Validity (for net/tls.py's `_times`)
Fields = tuple[str | None, str, str, list[str], bytes]


def fields(der: bytes, max_chars: int, max_san: int) -> Fields | None:
    """(subject CN, subject, issuer, SAN, encoded validity) of a certificate cryptography
    has loaded, as cryptography renders them (names cut at `max_chars`), or None to ask
    cryptography."""
    try:
        pos, tbs_end = issuer_at(der)
        issuer = element(der, pos)
        pos = element(der, issuer[1])[1]  # validity
        validity = der[issuer[1] : pos]
        subject = element(der, pos)
        pos = element(der, subject[1])[1]  # subjectPublicKeyInfo
        extensions: tuple[int, int] | None = None
        while pos < tbs_end:  # [1] and [2] unique identifiers, [3] extensions
            tag = der[pos]
            body, pos = element(der, pos)
            if tag == 0xA3:
                seq_start, seq_end = element(der, body)
                if der[body] != 0x30 or seq_end != pos:
                    return None
                extensions = seq_start, seq_end
        common, subject_text = name(der, *subject)
        if der[issuer[0] : issuer[1]] == der[subject[0] : subject[1]]:
            issuer_text = subject_text  # self-signed, as most certificates found by address
        else:
            issuer_text = name(der, *issuer)[1]
        san = subject_alt_names(der, extensions, max_san)
    except (_Odd, IndexError, ValueError):
        return None
    cut = None if common is None else common[:max_chars]
    names = [n[:max_chars] for n in san]
    return cut, subject_text[:max_chars], issuer_text[:max_chars], names, validity


__all__ = ["element", "fields", "issuer_at", "name", "subject_alt_names"]
