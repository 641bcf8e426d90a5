"""Address intervals, the exclusion (blocklist) file format and the built-in reserved ranges.

Addresses are handled as integer intervals `[start, end)` per IP version so that large
spaces (0.0.0.0/0, an IPv6 /32) cost one pair of integers, never a list of addresses.
The exclusion file is ZMap's blocklist format: one CIDR or address per line, `#` starts a
comment (whole line or trailing), blank lines ignored; `a.b.c.d-e.f.g.h` ranges are accepted
too.
"""

from __future__ import annotations

import ipaddress
import sys
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from exwatch.errors import UsageError

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
RESERVED_V6: tuple[str, ...] = (
    "::/128",  # unspecified
    "::1/128",  # loopback
    "::ffff:0:0/96",  # IPv4-mapped: scan the IPv4 address instead
    "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
    "100::/64",  # discard-only (RFC 6666)
    "2001:db8::/32",  # documentation (RFC 3849)
    "3fff::/20",  # documentation (RFC 9637)
    "fc00::/7",  # unique local (RFC 4193)
    "fe80::/10",  # link local
    "fec0::/10",  # deprecated site local (RFC 3879)
    "ff00::/8",  # multicast
)


def parse_interval(text: str) -> Interval | None:
    """An address, CIDR or `a-b` range as an interval; None if `text` is none of these.

    Raises UsageError for things that are clearly meant as addresses but are wrong
    (a range whose end is before its start, mixed versions).
    """
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


def _reserved() -> list[Interval]:
    found = [parse_interval(c) for c in (*RESERVED_V4, *RESERVED_V6)]
    return merge(i for i in found if i is not None)


RESERVED: list[Interval] = _reserved()


def is_reserved(ip: str) -> bool:
    """Whether an address is in a private, loopback or otherwise reserved range."""
    addr = ipaddress.ip_address(ip)
    return contains(RESERVED, addr.version, int(addr))


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
        return cls(merge(found), (source,))

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
        addr = ipaddress.ip_address(ip)
        return contains(self.intervals, addr.version, int(addr))

    @property
    def size(self) -> int:
        return sum(e - s for _, s, e in self.intervals)

    def addresses(self, within: list[Interval]) -> Iterator[tuple[int, int]]:
        """(version, value) of excluded addresses that are also inside `within` (merged)."""
        inside, _ = subtract(within, subtract(within, self.intervals)[0])
        for v, s, e in inside:
            yield from ((v, x) for x in range(s, e))


__all__ = [
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
    "subtract",
]
