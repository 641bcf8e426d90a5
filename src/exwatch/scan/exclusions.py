"""Address intervals, the exclusion (blocklist) file format and the built-in reserved ranges.

Addresses are handled as integer intervals `[start, end)` per IP version so that large
spaces (0.0.0.0/0, an IPv6 /32) cost one pair of integers, never a list of addresses.
The exclusion file is ZMap's blocklist format: one CIDR or address per line, `#` starts a
comment (whole line or trailing), blank lines ignored; `a.b.c.d-e.f.g.h` ranges are accepted
too.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from exwatch.errors import UsageError
from exwatch.scan.embedded import embedded_ipv4, project_v4, reverse_project

# (version, start, end) with end exclusive.
Interval = tuple[int, int, int]

# Ranges no census should touch: IANA special-purpose registries (RFC 6890 and successors).
# Refused unless allow_private=True; a target spec entirely inside one is a usage error.
RESERVED_V4: tuple[str, ...] = (
    "0.0.0.0/8",  # "this network" (RFC 791)
    "10.0.0.0/8",  # private (RFC 1918)
    "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link local (RFC 3927)
    "172.16.0.0/12",  # private (RFC 1918)
    "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",  # TEST-NET-1 (RFC 5737)
    "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
    "192.168.0.0/16",  # private (RFC 1918)
    "198.18.0.0/15",  # benchmarking (RFC 2544)
    "198.51.100.0/24",  # TEST-NET-2 (RFC 5737)
    "203.0.113.0/24",  # TEST-NET-3 (RFC 5737)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, includes 255.255.255.255 (limited broadcast)
)
# The IANA IPv6 special-purpose address registry (RFC 6890 and successors) plus the IPv6
# address space registry: everything outside 2000::/3 is "reserved by IETF" or not global.
RESERVED_V6: tuple[str, ...] = (
    "::/3",  # reserved by IETF: ::/128, ::1/128, IPv4-compatible ::/96, IPv4-mapped
    #          ::ffff:0:0/96, 64:ff9b:1::/48 (RFC 8215), 100::/64 (RFC 6666),
    #          100:0:0:1::/64 (RFC 9780); 64:ff9b::/96 is carved out below
    "4000::/2",  # reserved by IETF, includes 5f00::/16 (SRv6 SIDs, RFC 9602)
    "8000::/1",  # reserved by IETF, fc00::/7 (ULA), fe80::/10, fec0::/10, ff00::/8 multicast
    "2001::/23",  # IETF protocol assignments (RFC 2928); global parts carved out below
    "2001:db8::/32",  # documentation (RFC 3849)
    "3fff::/20",  # documentation (RFC 9637)
)
# Inside the ranges above but globally reachable (the registry says so), or decided by the
# IPv4 address they embed (embedded.py): NAT64's well-known prefix and Teredo.
GLOBAL_V6: tuple[str, ...] = (
    "64:ff9b::/96",  # NAT64 well-known prefix (RFC 6052): the embedded IPv4 address decides
    "2001::/32",  # Teredo (RFC 4380): the embedded server and client addresses decide
    "2001:1::1/128",  # Port Control Protocol anycast (RFC 7723)
    "2001:1::2/128",  # TURN anycast (RFC 8155)
    "2001:1::3/128",  # DNS-SD service registration anycast (RFC 9665)
    "2001:3::/32",  # AMT (RFC 7450)
    "2001:4:112::/48",  # AS112-v6 (RFC 7535)
    "2001:20::/28",  # ORCHIDv2 (RFC 7343)
    "2001:30::/28",  # drone remote ID entity tags (RFC 9374)
)


def parse_interval(text: str) -> Interval | None:
    """An address, CIDR or `a-b` range as an interval; None if `text` is none of these.

    Raises UsageError for things that are clearly meant as addresses but are wrong
    (a range whose end is before its start, mixed versions).
    """
    try:
        # A dotted quad, as inet_pton and ipaddress both read it (four decimal octets, no
        # leading zeros): target lists are mostly single addresses, and this is a tenth of
        # ip_network's cost.
        start = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        return (4, start, start + 1)
    except (OSError, ValueError):  # anything else: the general forms below
        pass
    if "-" in text and ("." in text or ":" in text):
        left, _, right = text.partition("-")
        try:
            a = ipaddress.ip_address(left.strip())
            b = ipaddress.ip_address(right.strip())
        except ValueError:
            return None
        if a.version != b.version:
            raise UsageError(f"range {text!r} mixes IPv4 and IPv6")
        if int(b) < int(a):
            raise UsageError(f"range {text!r} ends before it starts")
        return (a.version, int(a), int(b) + 1)
    try:
        # strict=False: like ZMap, 10.1.2.3/8 means 10.0.0.0/8.
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    start = int(net.network_address)
    return (net.version, start, start + net.num_addresses)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint, non-adjacent intervals covering the same addresses."""
    out: list[Interval] = []
    for v, s, e in sorted(intervals):
        if out and out[-1][0] == v and s <= out[-1][2]:
            if e > out[-1][2]:
                out[-1] = (v, out[-1][1], e)
        else:
            out.append((v, s, e))
    return out


def subtract(base: list[Interval], cut: list[Interval]) -> tuple[list[Interval], int]:
    """`base` minus `cut` (both merged); returns the remainder and how many addresses were cut."""
    out: list[Interval] = []
    removed = 0
    j = 0
    for v, s, e in base:
        # Skip cut intervals entirely before this one (both lists are sorted by (v, s)).
        while j < len(cut) and (cut[j][0], cut[j][2]) <= (v, s):
            j += 1
        k = j
        cur = s
        while k < len(cut) and cut[k][0] == v and cut[k][1] < e:
            cs, ce = cut[k][1], cut[k][2]
            if cs > cur:
                out.append((v, cur, cs))
            lo, hi = max(cs, cur), min(ce, e)
            if hi > lo:
                removed += hi - lo
            cur = max(cur, ce)
            if ce > e:
                break
            k += 1
        if cur < e:
            out.append((v, cur, e))
    return out, removed


def overlap(interval: Interval, merged: list[Interval]) -> int:
    """Number of addresses of `interval` inside the merged list."""
    _, removed = subtract([interval], merged)
    return removed


def contains(merged: list[Interval], version: int, value: int) -> bool:
    """Whether an address is inside a merged interval list (binary search)."""
    i = bisect_right(merged, (version, value, sys.maxsize << 128)) - 1
    return i >= 0 and merged[i][0] == version and merged[i][1] <= value < merged[i][2]


def _parsed(cidrs: Iterable[str]) -> list[Interval]:
    found = [parse_interval(c) for c in cidrs]
    return merge(i for i in found if i is not None)


def with_spellings(intervals: Iterable[Interval]) -> list[Interval]:
    """`intervals` plus every contiguous spelling of their addresses in the other version
    (IPv4 as IPv4-mapped, compatible, NAT64 and 6to4 IPv6; those IPv6 forms back as IPv4)."""
    base = list(intervals)
    v4 = merge([*base, *reverse_project(base)])
    return merge([*base, *v4, *project_v4(v4)])


def _reserved() -> list[Interval]:
    # Reserved IPv4 addresses are reserved in every spelling; the reserved IPv6 ranges are
    # reserved for themselves (::ffff:0:0/96 is refused whole, not as all of IPv4).
    v6, _ = subtract(_parsed(RESERVED_V6), _parsed(GLOBAL_V6))
    v4 = _parsed(RESERVED_V4)
    return merge([*v4, *v6, *project_v4(v4)])


RESERVED: list[Interval] = _reserved()


def refused_as(merged: list[Interval], version: int, value: int) -> bool:
    """Whether an address, or any IPv4 address its IPv6 spelling embeds, is in `merged`."""
    if contains(merged, version, value):
        return True
    return version == 6 and any(contains(merged, 4, v4) for v4 in embedded_ipv4(value))


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(ip.split("%", 1)[0])  # a zone id does not change the host


def is_reserved(ip: str) -> bool:
    """Whether an address is in a private, loopback or otherwise reserved range, directly or
    through the IPv4 address it embeds (::ffff:10.0.0.1, 64:ff9b::a00:1, 2002:7f00:1::)."""
    addr = _address(ip)
    return refused_as(RESERVED, addr.version, int(addr))


def strip_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


@dataclass(frozen=True)
class Exclusions:
    """Addresses the user never wants touched (ZMap blocklist files), merged for fast lookup."""

    intervals: list[Interval] = field(default_factory=list)
    sources: tuple[str, ...] = ()

    @classmethod
    def none(cls) -> Exclusions:
        return cls()

    @classmethod
    def parse(cls, lines: Iterable[str], source: str = "<exclusions>") -> Exclusions:
        found: list[Interval] = []
        for number, raw in enumerate(lines, 1):
            text = strip_comment(raw)
            if not text:
                continue
            try:
                interval = parse_interval(text)
            except UsageError as exc:
                raise UsageError(f"{source}:{number}: {exc}") from None
            if interval is None:
                raise UsageError(f"{source}:{number}: not an address, CIDR or range: {text[:80]!r}")
            found.append(interval)
        # Excluding an address excludes each of its spellings (::ffff:a.b.c.d, 6to4, ...).
        return cls(with_spellings(found), (source,))

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> Exclusions:
        """Read and merge several blocklist files; UsageError names a missing file or bad line."""
        parts: list[Exclusions] = []
        for path in paths:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    parts.append(cls.parse(handle, str(path)))
            except OSError as exc:
                raise UsageError(f"cannot read exclusion file {path}: {exc.strerror}") from None
        return cls.combine(parts)

    @classmethod
    def from_stream(cls, stream: TextIO, source: str) -> Exclusions:
        return cls.parse(stream, source)

    @classmethod
    def combine(cls, parts: Iterable[Exclusions]) -> Exclusions:
        parts = list(parts)
        merged = merge(i for p in parts for i in p.intervals)
        return cls(merged, tuple(s for p in parts for s in p.sources))

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, str):
            return False
        addr = _address(ip)
        return refused_as(self.intervals, addr.version, int(addr))

    @property
    def size(self) -> int:
        return sum(e - s for _, s, e in self.intervals)

    def addresses(self, within: list[Interval]) -> Iterator[tuple[int, int]]:
        """(version, value) of excluded addresses that are also inside `within` (merged)."""
        inside, _ = subtract(within, subtract(within, self.intervals)[0])
        for v, s, e in inside:
            yield from ((v, x) for x in range(s, e))


__all__ = [
    "GLOBAL_V6",
    "RESERVED",
    "RESERVED_V4",
    "RESERVED_V6",
    "Exclusions",
    "Interval",
    "contains",
    "is_reserved",
    "merge",
    "overlap",
    "parse_interval",
    "refused_as",
    "subtract",
    "with_spellings",
]
