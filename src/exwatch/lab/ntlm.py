"""NTLM CHALLENGE (type 2) messages like the ones Exchange's IIS sends on /EWS/ and /rpc/.

nginx cannot run NTLM, but a scanner only reads the first challenge: a fixed type-2
message per host, sent as a static `WWW-Authenticate: NTLM <base64>` header, is enough.
Layout per MS-NLMP 2.2.1.2 (CHALLENGE_MESSAGE) and 2.2.2.1 (AV_PAIR).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

# AV_PAIR ids (MS-NLMP 2.2.2.1).
AV_EOL = 0
AV_NB_COMPUTER = 1
AV_NB_DOMAIN = 2
AV_DNS_COMPUTER = 3
AV_DNS_DOMAIN = 4
AV_DNS_TREE = 5
AV_TIMESTAMP = 7

# Flags Windows Server sends to a type-1 with the usual client flags: unicode, request
# target, NTLM, always sign, target type domain, extended session security, target info,
# version, 128-bit, key exchange, 56-bit.
_FLAGS = (
    0x00000001
    | 0x00000004
    | 0x00000200
    | 0x00008000
    | 0x00010000
    | 0x00080000
    | 0x00800000
    | 0x02000000
    | 0x20000000
    | 0x40000000
    | 0x80000000
)
_HEADER_LEN = 56  # signature .. version, before the payload


@dataclass(frozen=True, slots=True)
class NtlmIdentity:
    """What a type-2 message tells about the server (the scan record's `ntlm` object)."""

    netbios_domain: str
    netbios_computer: str
    dns_domain: str
    dns_computer: str
    dns_tree: str
    os_version: tuple[int, int, int]  # e.g. (10, 0, 17763) = Windows Server 2019

    def to_json(self) -> dict[str, str]:
        return {
            "netbios_domain": self.netbios_domain,
            "netbios_computer": self.netbios_computer,
            "dns_domain": self.dns_domain,
            "dns_computer": self.dns_computer,
            "dns_tree": self.dns_tree,
            "os_version": ".".join(str(p) for p in self.os_version),
        }


def _av(av_id: int, value: bytes) -> bytes:
    return struct.pack("<HH", av_id, len(value)) + value


def challenge_message(who: NtlmIdentity, challenge: bytes, filetime: int) -> bytes:
    """The binary CHALLENGE_MESSAGE; `challenge` is 8 bytes, `filetime` a Windows FILETIME."""
    if len(challenge) != 8:
        raise ValueError("the server challenge is 8 bytes")
    target = who.netbios_domain.encode("utf-16-le")
    info = b"".join(
        (
            _av(AV_NB_DOMAIN, who.netbios_domain.encode("utf-16-le")),
            _av(AV_NB_COMPUTER, who.netbios_computer.encode("utf-16-le")),
            _av(AV_DNS_DOMAIN, who.dns_domain.encode("utf-16-le")),
            _av(AV_DNS_COMPUTER, who.dns_computer.encode("utf-16-le")),
            _av(AV_DNS_TREE, who.dns_tree.encode("utf-16-le")),
            _av(AV_TIMESTAMP, struct.pack("<Q", filetime)),
            _av(AV_EOL, b""),
        )
    )
    major, minor, build = who.os_version
    return b"".join(
        (
            b"NTLMSSP\x00",
            struct.pack("<I", 2),
            struct.pack("<HHI", len(target), len(target), _HEADER_LEN),
            struct.pack("<I", _FLAGS),
            challenge,
            b"\x00" * 8,
            struct.pack("<HHI", len(info), len(info), _HEADER_LEN + len(target)),
            struct.pack("<BBH", major, minor, build) + b"\x00\x00\x00\x0f",
            target,
            info,
        )
    )


def challenge_header(who: NtlmIdentity, challenge: bytes, filetime: int) -> str:
    """The base64 token that follows `NTLM ` in WWW-Authenticate."""
    return base64.b64encode(challenge_message(who, challenge, filetime)).decode("ascii")
