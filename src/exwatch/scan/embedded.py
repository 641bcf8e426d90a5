"""IPv4 addresses carried inside IPv6 addresses, for the exclusion and reserved-range decisions.

An IPv6 spelling of an IPv4 host reaches that host (IPv4-mapped on a dual-stack socket, NAT64
through a translator, 6to4 and Teredo through relays), so every decision made about an IPv4
address must also be made about each IPv4 address an IPv6 address embeds.  Forms recognised:

    ::ffff:a.b.c.d          IPv4-mapped (RFC 4291 2.5.5.2)
    ::a.b.c.d               IPv4-compatible, deprecated (RFC 4291 2.5.5.1)
    64:ff9b::a.b.c.d        NAT64 well-known prefix (RFC 6052)
    64:ff9b:1::/48          NAT64 local-use prefix (RFC 8215); the operator may use any of
                            RFC 6052's prefix lengths inside it, so every position is read
    2002:AABB:CCDD::/48     6to4 (RFC 3056): the 32 bits after 2002
    2001:0:SSSS:SSSS:f:p:CCCC:CCCC   Teredo (RFC 4380 4): server S, client C stored XOR 0xffffffff
    ...:0:5efe:a.b.c.d      ISATAP interface identifier (RFC 5214 6.1), also 200:5efe

Two helpers: `embedded_ipv4` reads the IPv4 addresses of one IPv6 address (per-address
checks), and `project_v4` maps IPv4 intervals into the IPv6 prefixes where the embedding is
contiguous (mapped, compatible, NAT64 /96, 6to4), so whole IPv6 ranges can be cut by interval
arithmetic instead of address by address.
"""

from __future__ import annotations

from collections.abc import Iterable

# (version, start, end) with end exclusive, as in exclusions.py.
Interval = tuple[int, int, int]

_V4_MASK = 0xFFFFFFFF
_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96
_NAT64 = 0x0064FF9B << 96  # 64:ff9b::/96
_NAT64_LOCAL = 0x0064FF9B0001 << 80  # 64:ff9b:1::/48
_SIX_TO_FOUR = 0x2002 << 112  # 2002::/16
_TEREDO = 0x20010000 << 96  # 2001::/32

# Prefixes (start, length in bits) whose addresses embed an IPv4 address.
EMBEDDING_PREFIXES: tuple[tuple[int, int], ...] = (
    (0, 96),
    (_MAPPED, 96),
    (_NAT64, 96),
    (_NAT64_LOCAL, 48),
    (_SIX_TO_FOUR, 16),
    (_TEREDO, 32),
)


def _in(value: int, start: int, length: int) -> bool:
    return value >> (128 - length) == start >> (128 - length)


def _rfc6052(value: int, prefix_len: int) -> int:
    """The IPv4 address at the position RFC 6052 2.2 gives for one prefix length
    (bits 64-71, the "u" octet, are skipped)."""
    octets = value.to_bytes(16, "big")
    if prefix_len == 96:
        v4 = octets[12:16]
    elif prefix_len == 64:
        v4 = octets[9:13]
    elif prefix_len == 56:
        v4 = octets[7:8] + octets[9:12]
    elif prefix_len == 48:
        v4 = octets[6:8] + octets[9:11]
    elif prefix_len == 40:
        v4 = octets[5:8] + octets[9:10]
    else:  # 32
        v4 = octets[4:8]
    return int.from_bytes(v4, "big")


def embedded_ipv4(value: int) -> tuple[int, ...]:
    """Every IPv4 address (as an int) that the IPv6 address `value` carries; () for none."""
    found: list[int] = []
    high = value >> 32
    # compatible (:: and ::1 included), mapped, NAT64 well-known prefix: the low 32 bits
    if high in (0, 0xFFFF) or _in(value, _NAT64, 96):
        found.append(value & _V4_MASK)
    elif _in(value, _NAT64_LOCAL, 48):
        found.extend(_rfc6052(value, n) for n in (48, 56, 64, 96))
    elif _in(value, _SIX_TO_FOUR, 16):
        found.append((value >> 80) & _V4_MASK)
    elif _in(value, _TEREDO, 32):
        found.append((value >> 64) & _V4_MASK)  # the Teredo server
        found.append((value & _V4_MASK) ^ _V4_MASK)  # the client, obfuscated on the wire
    iid = (value >> 32) & _V4_MASK
    if iid in (0x00005EFE, 0x02005EFE):  # ISATAP, under any /64
        found.append(value & _V4_MASK)
    return tuple(dict.fromkeys(found))


def project_v4(intervals: Iterable[Interval]) -> list[Interval]:
    """IPv6 intervals holding every contiguous IPv6 spelling of the given IPv4 intervals
    (mapped, compatible, NAT64 well-known prefix, 6to4); IPv6 intervals are ignored."""
    out: list[Interval] = []
    for version, start, end in intervals:
        if version != 4:
            continue
        for base in (0, _MAPPED, _NAT64):
            out.append((6, base + start, base + end))
        # 6to4: the IPv4 address is the top 32 bits after 2002::/16, so a run of IPv4
        # addresses is one run of /48s.
        out.append((6, _SIX_TO_FOUR | (start << 80), _SIX_TO_FOUR | (end << 80)))
    return out


def reverse_project(intervals: Iterable[Interval]) -> list[Interval]:
    """IPv4 intervals covering every IPv4 address an IPv6 interval may embed, for the
    contiguous forms (a user who excludes ::ffff:10.0.0.0/104 means 10.0.0.0/8)."""
    out: list[Interval] = []
    for version, start, end in intervals:
        if version != 6:
            continue
        last = end - 1
        for base, length, shift in (
            (0, 96, 0),
            (_MAPPED, 96, 0),
            (_NAT64, 96, 0),
            (_SIX_TO_FOUR, 16, 80),
        ):
            size = 1 << (128 - length)
            lo, hi = max(start, base), min(last, base + size - 1)
            if lo <= hi:
                out.append((4, (lo >> shift) & _V4_MASK, ((hi >> shift) & _V4_MASK) + 1))
    return out


__all__ = ["EMBEDDING_PREFIXES", "embedded_ipv4", "project_v4", "reverse_project"]
