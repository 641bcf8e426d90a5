"""Decoder for the X-Rps-CAT CommonAccessToken that ProxyShell puts in the query string.

The value is base64 of Exchange's serialised CommonAccessToken: tagged fields
`V` (version, 2 bytes), `T` (token type, length-prefixed, e.g. "Windows"), `C` (compressed
flag, 1 byte), `A` (authentication type, e.g. "Kerberos"/"Basic"), `L` (logon name),
`U` (user SID), `G` (group count as little-endian uint32, then per group a uint32 of
attributes, a length byte and the SID), `E` (extension count).  Attackers write these
bytes, so the decoder is strict about bounds and returns what it could read.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field
from urllib.parse import unquote


@dataclass(slots=True)
class CommonAccessToken:
    token_type: str = ""
    auth_type: str = ""
    logon_name: str = ""
    user_sid: str = ""
    group_sids: list[str] = field(default_factory=list)
    version: int | None = None
    complete: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "token_type": self.token_type,
            "auth_type": self.auth_type,
            "logon_name": self.logon_name,
            "user_sid": self.user_sid,
            "group_sids": list(self.group_sids),
            "complete": self.complete,
            "error": self.error,
        }


MAX_GROUPS = 4096


def extract_token(query: str) -> str | None:
    """The X-Rps-CAT value of a query string (URL-decoded), or None."""
    low = query.lower()
    start = low.find("x-rps-cat=")
    if start == -1:
        return None
    value = query[start + len("x-rps-cat=") :]
    for stop in ("&", ";", " ", ","):
        cut = value.find(stop)
        if cut != -1:
            value = value[:cut]
    return unquote(value)


def decode(token: str) -> CommonAccessToken:
    out = CommonAccessToken()
    text = token.strip()
    try:
        blob = base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except (binascii.Error, ValueError) as exc:
        out.error = f"not base64: {exc}"
        return out
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(blob):
            raise ValueError(f"token ends at byte {len(blob)}, needed {pos + n}")
        chunk = blob[pos : pos + n]
        pos += n
        return chunk

    def short_string() -> str:
        length = take(1)[0]
        return take(length).decode("utf-8", errors="replace")

    try:
        while pos < len(blob):
            tag = take(1)
            if tag == b"V":
                out.version = struct.unpack("<H", take(2))[0]
            elif tag == b"T":
                out.token_type = short_string()
            elif tag == b"C":
                take(1)
            elif tag == b"A":
                out.auth_type = short_string()
            elif tag == b"L":
                out.logon_name = short_string()
            elif tag == b"U":
                out.user_sid = short_string()
            elif tag == b"G":
                count = struct.unpack("<I", take(4))[0]
                if count > MAX_GROUPS:
                    raise ValueError(f"{count} groups is not plausible")
                for _ in range(count):
                    take(4)  # attributes
                    out.group_sids.append(short_string())
            elif tag == b"E":
                take(4)
                out.complete = True
                break
            else:
                raise ValueError(f"unknown field tag {tag!r} at byte {pos - 1}")
        else:
            out.complete = bool(out.logon_name or out.user_sid)
    except (ValueError, struct.error) as exc:
        out.error = str(exc)
    return out


def encode(logon_name: str, user_sid: str, groups: list[str], auth_type: str = "Kerberos") -> str:
    """Build a token (tests and fixtures; the inverse of `decode`)."""

    def s(tag: bytes, value: str) -> bytes:
        raw = value.encode()
        return tag + bytes([len(raw)]) + raw

    blob = b"V" + struct.pack("<H", 1) + s(b"T", "Windows") + b"C\x00" + s(b"A", auth_type)
    blob += s(b"L", logon_name) + s(b"U", user_sid) + b"G" + struct.pack("<I", len(groups))
    for sid in groups:
        blob += struct.pack("<I", 7) + bytes([len(sid.encode())]) + sid.encode()
    blob += b"E" + struct.pack("<I", 0)
    return base64.b64encode(blob).decode()


__all__ = ["CommonAccessToken", "decode", "encode", "extract_token"]
