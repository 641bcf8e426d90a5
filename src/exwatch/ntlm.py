"""NTLM messages for the pre-authentication challenge probe (pure; no sockets).

A client that sends a type-1 (NEGOTIATE) message gets a type-2 (CHALLENGE) message back
before any credential is involved.  The challenge names the server (NetBIOS and DNS names,
domain, forest) and, when the VERSION flag is set, the Windows build.  Layout per
[MS-NLMP] 2.2.1.2 and 2.2.2.1; every offset read here is bounds-checked because the bytes
come from the scanned server.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import struct
from dataclasses import dataclass

SIGNATURE = b"NTLMSSP\x00"

# NEGOTIATE_UNICODE | NEGOTIATE_OEM | REQUEST_TARGET | NEGOTIATE_NTLM | ALWAYS_SIGN |
# NEGOTIATE_EXTENDED_SESSIONSECURITY | NEGOTIATE_VERSION | NEGOTIATE_128 | NEGOTIATE_56
_TYPE1_FLAGS = 0x00000001 | 0x00000002 | 0x00000004 | 0x00000200 | 0x00008000
_TYPE1_FLAGS |= 0x00080000 | 0x02000000 | 0x20000000 | 0x80000000
_FLAG_VERSION = 0x02000000
_FLAG_UNICODE = 0x00000001

# AV_PAIR ids of [MS-NLMP] 2.2.2.1 that name things.
_AV_FIELDS = {
    1: "netbios_computer",
    2: "netbios_domain",
    3: "dns_computer",
    4: "dns_domain",
    5: "dns_tree",
}
_MAX_FIELD_CHARS = 256  # names longer than this are truncated: record size stays bounded
_MAX_AV_PAIRS = 64


class NtlmParseError(ValueError):
    """The server's NTLM challenge is not a well-formed type-2 message."""


@dataclass(frozen=True, slots=True)
class NtlmChallenge:
    """What a type-2 message tells about the server."""

    target_name: str | None
    netbios_domain: str | None
    netbios_computer: str | None
    dns_domain: str | None
    dns_computer: str | None
    dns_tree: str | None
    os_version: str | None  # "10.0.17763" (major.minor.build of Windows)

    def to_json(self) -> dict[str, str | None]:
        """The record's `ntlm` object."""
        return {
            "netbios_domain": self.netbios_domain,
            "netbios_computer": self.netbios_computer,
            "dns_domain": self.dns_domain,
            "dns_computer": self.dns_computer,
            "dns_tree": self.dns_tree,
            "os_version": self.os_version,
        }


def negotiate_message() -> bytes:
    """A type-1 message without domain or workstation (as nmap's http-ntlm-info sends)."""
    # Signature, type 1, flags, empty domain and workstation buffers, version 6.1.7601 rev 15.
    return (
        SIGNATURE
        + struct.pack("<II", 1, _TYPE1_FLAGS)
        + struct.pack("<HHI", 0, 0, 0)
        + struct.pack("<HHI", 0, 0, 0)
        + struct.pack("<BBHxxxB", 6, 1, 7601, 15)
    )


NEGOTIATE_B64 = base64.b64encode(negotiate_message()).decode("ascii")


_utf16le = codecs.utf_16_le_decode


def _decode(raw: bytes, unicode: bool) -> str:
    # The codec function itself: bytes.decode finds "utf-16-le" through the codec registry
    # and a Python wrapper on every call.  final=True: an odd last byte becomes U+FFFD.
    text = _utf16le(raw, "replace", True)[0] if unicode else raw.decode("latin-1")
    return text[:_MAX_FIELD_CHARS]


def _buffer(data: bytes, at: int) -> bytes:
    """The bytes a security buffer (length, max length, offset) at `at` points to."""
    length, _max_len, offset = struct.unpack_from("<HHI", data, at)
    if offset + length > len(data):
        raise NtlmParseError(f"buffer at {at} points past the message end")
    return data[offset : offset + length]


def parse_challenge(message: bytes) -> NtlmChallenge:
    """Parse a type-2 message; raise NtlmParseError for anything malformed."""
    if len(message) < 32 or not message.startswith(SIGNATURE):
        raise NtlmParseError("not an NTLMSSP message")
    (msg_type,) = struct.unpack_from("<I", message, 8)
    if msg_type != 2:
        raise NtlmParseError(f"NTLM message type {msg_type}, expected 2")
    (flags,) = struct.unpack_from("<I", message, 20)
    unicode = bool(flags & _FLAG_UNICODE)
    target = _decode(_buffer(message, 12), unicode) or None

    fields: dict[str, str] = {}
    if len(message) >= 48:
        info = _buffer(message, 40)
        pos = 0
        for _ in range(_MAX_AV_PAIRS):
            if pos + 4 > len(info):
                raise NtlmParseError("target info ends inside an AV pair header")
            av_id, av_len = struct.unpack_from("<HH", info, pos)
            pos += 4
            if av_id == 0:  # MsvAvEOL
                break
            if pos + av_len > len(info):
                raise NtlmParseError("AV pair runs past the target info")
            name = _AV_FIELDS.get(av_id)
            if name is not None:
                fields[name] = _decode(info[pos : pos + av_len], True)
            pos += av_len
        else:
            raise NtlmParseError("too many AV pairs")

    os_version = None
    if flags & _FLAG_VERSION and len(message) >= 56:
        major, minor, build = struct.unpack_from("<BBH", message, 48)
        os_version = f"{major}.{minor}.{build}"

    return NtlmChallenge(
        target_name=target,
        netbios_domain=fields.get("netbios_domain"),
        netbios_computer=fields.get("netbios_computer"),
        dns_domain=fields.get("dns_domain"),
        dns_computer=fields.get("dns_computer"),
        dns_tree=fields.get("dns_tree"),
        os_version=os_version,
    )


def challenge_from_header(value: str) -> NtlmChallenge:
    """Parse a `WWW-Authenticate: NTLM <base64>` value (the part after the scheme or all of it)."""
    token = value.strip()
    scheme, _, rest = token.partition(" ")
    if scheme.lower() in ("ntlm", "negotiate"):
        token = rest.strip()
    if not token:
        raise NtlmParseError("NTLM header without a challenge")
    if len(token) > 8192:
        raise NtlmParseError("NTLM challenge longer than 8 KiB")
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NtlmParseError("NTLM challenge is not base64") from exc
    try:
        return parse_challenge(raw)
    except struct.error as exc:  # short reads inside fixed fields
        raise NtlmParseError(f"truncated NTLM message: {exc}") from exc


def build_challenge(
    *,
    netbios_domain: str = "CONTOSO",
    netbios_computer: str = "EXCH01",
    dns_domain: str = "contoso.local",
    dns_computer: str = "exch01.contoso.local",
    dns_tree: str = "contoso.local",
    os_version: tuple[int, int, int] = (10, 0, 17763),
) -> bytes:
    """A well-formed type-2 message (for tests, the lab and the self-test)."""
    pairs = b""
    for av_id, value in (
        (2, netbios_domain),
        (1, netbios_computer),
        (4, dns_domain),
        (3, dns_computer),
        (5, dns_tree),
    ):
        raw = value.encode("utf-16-le")
        pairs += struct.pack("<HH", av_id, len(raw)) + raw
    pairs += struct.pack("<HH", 7, 8) + b"\x00" * 8  # MsvAvTimestamp, as servers send
    pairs += struct.pack("<HH", 0, 0)
    target = netbios_domain.encode("utf-16-le")
    header_len = 56
    flags = 0x00000001 | 0x00000004 | 0x00000200 | 0x00010000 | 0x00800000 | _FLAG_VERSION
    major, minor, build = os_version
    return (
        SIGNATURE
        + struct.pack("<I", 2)
        + struct.pack("<HHI", len(target), len(target), header_len)
        + struct.pack("<I", flags)
        + b"\x01\x23\x45\x67\x89\xab\xcd\xef"  # server challenge
        + b"\x00" * 8
        + struct.pack("<HHI", len(pairs), len(pairs), header_len + len(target))
        + struct.pack("<BBHxxxB", major, minor, build, 15)
        + target
        + pairs
    )


__all__ = [
    "NEGOTIATE_B64",
    "NtlmChallenge",
    "NtlmParseError",
    "build_challenge",
    "challenge_from_header",
    "negotiate_message",
    "parse_challenge",
]
