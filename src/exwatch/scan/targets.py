"""Scan targets: parse specs, drop exclusions and reserved ranges, stream in seeded order.

A spec is an IPv4/IPv6 address, a CIDR, a range `a.b.c.d-e.f.g.h` or a hostname.  Specs
come from arguments, from files (`-l FILE`, `-` for stdin: one per line, `#` comments,
blank lines ignored) and are merged into sorted address intervals, so memory depends on
the number of specs, never on the number of addresses.  Iteration follows a seeded
permutation (see permutation.py): the same seed gives the same order on every machine, and
`shard=(i, n)` gives disjoint slices that together cover the space.

Refusals: a spec entirely inside a private/loopback/reserved range is a UsageError unless
`allow_private`; for a spec that only overlaps one (0.0.0.0/0), those parts are skipped and
counted.  Addresses in the user's exclusion files are skipped and counted too (the caller
may still emit `blocklisted` records for them with `iter_excluded`).  Hostnames are kept
unresolved (the name is later the SNI and Host header); the orchestrator resolves them with
`resolve` and checks the answers with `TargetSpace.refusal`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
import sys
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

from exwatch.errors import ExwatchError, UsageError
from exwatch.net import dns
from exwatch.scan.exclusions import (
    RESERVED,
    Exclusions,
    Interval,
    merge,
    overlap,
    parse_interval,
    refused_as,
    strip_comment,
    subtract,
)
from exwatch.scan.permutation import Permutation


class Target(NamedTuple):
    """One thing to scan.  A NamedTuple (immutable) because iteration creates millions of them
    and a tuple is several times cheaper to build than a frozen dataclass.

    `position` is the cycle position in the seeded permutation (shard-independent), usable
    as a resume watermark; -1 for targets that are not part of the permutation (list
    entries, which are screened when probed).  (Not named `index`: that would shadow
    tuple.index.)  `error` marks a list line that is not a target: it becomes an
    `invalid-target` record and is never probed.
    """

    ip: str | None
    hostname: str | None
    port: int
    position: int
    error: str | None = None


class Spec(NamedTuple):
    """A target spec with where it came from, for error messages ("targets.txt:12")."""

    text: str
    origin: str


class ResolutionError(ExwatchError):
    """A hostname did not resolve (the orchestrator records it as `invalid-target`)."""


_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_TLD = re.compile(r"[a-z][a-z0-9-]*|xn--[a-z0-9-]+")


def parse_hostname(text: str) -> str | None:
    """The normalised hostname, or None if `text` is not one.

    The last label must start with a letter (RFC 3696 2: no all-numeric TLD), so a mistyped
    address such as 10.0.0.300 or 1.2.3.4-10 is an error rather than a name to look up.
    """
    name = text.strip().rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not name or len(name) > 253:
        return None
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if not _TLD.fullmatch(labels[-1]):
        return None
    return name


def read_specs(source: str | Path | TextIO, name: str | None = None) -> Iterator[Spec]:
    """Specs from a file (`-` means stdin) or an open stream, with file:line origins."""
    if isinstance(source, str | Path):
        if str(source) == "-":
            yield from read_specs(sys.stdin, "<stdin>")
            return
        try:
            with open(source, encoding="utf-8", errors="replace") as handle:
                yield from read_specs(handle, str(source))
        except OSError as exc:
            raise UsageError(f"cannot read target list {source}: {exc.strerror}") from None
        return
    label = name or getattr(source, "name", "<stream>")
    for number, raw in enumerate(source, 1):
        text = strip_comment(raw)
        if text:
            yield Spec(text, f"{label}:{number}")


def parse_shard(text: str) -> tuple[int, int]:
    """`i/N` with 1 <= i <= N (masscan's convention) -> zero-based (i - 1, N)."""
    left, sep, right = text.partition("/")
    try:
        i, n = int(left), int(right)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise UsageError(f"--shard must be i/N with 1 <= i <= N, e.g. 1/4; got {text!r}")
    return (i - 1, n)


def _all_reserved(interval: Interval) -> bool:
    """Whether every address of a spec is reserved (then the spec is refused outright)."""
    version, start, end = interval
    if overlap(interval, RESERVED) == end - start:
        return True
    # One IPv6 address whose Teredo/NAT64 local-use spelling embeds a reserved IPv4 one.
    return end - start == 1 and refused_as(RESERVED, version, start)


def _format_v4(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def _format_v6(value: int) -> str:
    return str(ipaddress.IPv6Address(value))


_URL = re.compile(r"(?i)(https?)://([^/?#]*)(?:[/?#].*)?")


class Endpoint(NamedTuple):
    """A target that names its own port: `host:port`, `[v6]:port` or an http(s) URL."""

    ip: str | None
    hostname: str | None
    port: int


def parse_ports(text: str) -> tuple[int, ...]:
    """`443` or `443,444,8443` -> ports in the given order, duplicates dropped."""
    ports: dict[int, None] = {}
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise UsageError(f"ports must be numbers 1-65535 separated by commas, got {text!r}")
        ports[int(part)] = None
    return tuple(ports)


def parse_endpoint(text: str, *, tls: bool = True) -> Endpoint | None:
    """`host:port`, `[v6]:port`, `https://host[:port]/...` as an Endpoint; None when `text`
    names no port or scheme (then it is an address, CIDR, range or hostname)."""
    scheme = None
    m = _URL.fullmatch(text)
    if m is not None:
        scheme, text = m.group(1).lower(), m.group(2)
        if "@" in text:
            raise UsageError(f"a target URL must not carry credentials: {m.group(0)[:80]!r}")
        if scheme == "http" and tls:
            raise UsageError(f"{m.group(0)[:80]!r} is plain HTTP: scan it with --plain-http")
        if scheme == "https" and not tls:
            raise UsageError(f"{m.group(0)[:80]!r} is HTTPS: scan it without --plain-http")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"not an [IPv6]:port target: {text[:80]!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif scheme is not None and ":" not in text:
        host, port_text = text, None
    else:
        return None
    if port_text is None:
        if scheme is None:
            return None
        port = 443 if scheme == "https" else 80
    elif port_text.isdigit() and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise UsageError(f"bad port in {text[:80]!r}: ports are 1-65535")
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        name = parse_hostname(host)
        if name is None:
            raise UsageError(f"not an address or hostname: {host[:80]!r}") from None
        return Endpoint(None, name, port)
    return Endpoint(str(address), None, port)


@dataclass(frozen=True)
class TargetSpace:
    """All addresses and hostnames of one scan, after exclusions; iterate with `iter`.

    Every address and hostname is scanned on every port of `ports`; endpoints (targets
    that name their own port) only on theirs.
    """

    ports: tuple[int, ...]
    intervals: tuple[Interval, ...]  # merged, sorted, exclusions removed
    hostnames: tuple[str, ...]
    excluded_count: int  # addresses of the specs dropped by the exclusion files
    reserved_count: int  # addresses of the specs dropped as private/reserved
    allow_private: bool
    exclusions: Exclusions
    requested: tuple[Interval, ...]  # merged specs before exclusions (for iter_excluded)
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def port(self) -> int:
        """The first port (the only one in most scans)."""
        return self.ports[0]

    @classmethod
    def from_specs(
        cls,
        specs: Iterable[str | Spec],
        *,
        allow_private: bool = False,
        exclusions: Exclusions | None = None,
        port: int = 443,
        ports: Iterable[int] | None = None,
        tls: bool = True,
    ) -> TargetSpace:
        port_list = tuple(dict.fromkeys(ports)) if ports is not None else (port,)
        for p in port_list:
            if not 1 <= p <= 65535:
                raise UsageError(f"port must be 1-65535, got {p}")
        if not port_list:
            raise UsageError("no port to scan")
        exclusions = exclusions or Exclusions.none()
        found: list[Interval] = []
        names: dict[str, None] = {}  # ordered set: duplicates scanned once
        endpoints: dict[Endpoint, None] = {}
        excluded_endpoints = 0
        for item in specs:
            spec = item if isinstance(item, Spec) else Spec(item.strip(), "argument")
            where = f"{spec.origin}: " if spec.origin != "argument" else ""
            try:
                interval = parse_interval(spec.text)
                endpoint = parse_endpoint(spec.text, tls=tls) if interval is None else None
            except UsageError as exc:
                raise UsageError(f"{where}{exc}") from None
            if interval is not None:
                if not allow_private and _all_reserved(interval):
                    raise UsageError(
                        f"{where}{spec.text!r} is a private, loopback or reserved range;"
                        " refusing to scan it (allow_private / --allow-private overrides)"
                    )
                found.append(interval)
                continue
            if endpoint is not None:
                if endpoint.ip is not None:
                    addr = ipaddress.ip_address(endpoint.ip)
                    if not allow_private and refused_as(RESERVED, addr.version, int(addr)):
                        raise UsageError(
                            f"{where}{spec.text!r} is a private, loopback or reserved address;"
                            " refusing to scan it (allow_private / --allow-private overrides)"
                        )
                    if refused_as(exclusions.intervals, addr.version, int(addr)):
                        excluded_endpoints += 1
                        continue
                endpoints[endpoint] = None
                continue
            hostname = parse_hostname(spec.text)
            if hostname is None:
                raise UsageError(
                    f"{where}not an address, CIDR, range, host:port, URL or hostname:"
                    f" {spec.text[:80]!r}"
                )
            names[hostname] = None
        requested = merge(found)
        remaining, reserved_count = (
            (requested, 0) if allow_private else subtract(requested, RESERVED)
        )
        remaining, excluded_count = subtract(remaining, exclusions.intervals)
        return cls(
            ports=port_list,
            intervals=tuple(remaining),
            hostnames=tuple(names),
            excluded_count=excluded_count + excluded_endpoints,
            reserved_count=reserved_count,
            allow_private=allow_private,
            exclusions=exclusions,
            requested=tuple(requested),
            endpoints=tuple(endpoints),
        )

    @property
    def address_count(self) -> int:
        return sum(e - s for _, s, e in self.intervals)

    @property
    def count(self) -> int:
        """Exact number of targets iteration yields over all shards (hostnames count once
        per port, endpoints once)."""
        return (self.address_count + len(self.hostnames)) * len(self.ports) + len(self.endpoints)

    def shard_count(self, shard: tuple[int, int]) -> int:
        """Expected targets in one shard (exact for n=1, within a few of the truth otherwise)."""
        i, n = shard
        return self.count // n + (1 if i < self.count % n else 0)

    def digest(self, seed: int) -> str:
        """Fingerprint of (space, seed, ports): shards of one scan must agree on it."""
        h = hashlib.sha256(f"{seed}:{','.join(map(str, self.ports))}:".encode())
        for v, s, e in self.intervals:
            h.update(f"{v},{s},{e};".encode())
        for name in self.hostnames:
            h.update(f"h:{name};".encode())
        for ep in self.endpoints:
            h.update(f"e:{ep.ip or ep.hostname}:{ep.port};".encode())
        return h.hexdigest()[:16]

    def permutation(self, seed: int) -> Permutation:
        return Permutation.create(self.count, seed)

    def iter(
        self, seed: int, shard: tuple[int, int] = (0, 1), *, from_position: int = 0
    ) -> Iterator[Target]:
        """Targets of one shard in seeded order, starting at cycle position `from_position`.

        Positions are global (a Target's `position`), so a resumed run passes the watermark
        it reached and gets exactly the rest of its shard.  With several ports, the
        permutation runs over (address, port) pairs, so one address's ports are spread over
        the scan rather than hit back to back.
        """
        i, n = shard
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"shard must satisfy 0 <= i < n, got {i}/{n}")
        total = self.count
        if total == 0:
            return
        perm = self.permutation(seed)
        position, stride = perm.shard_bounds(shard, from_position)
        if position >= perm.positions:
            return
        prime = perm.prime
        x = perm.element_at(position)
        step = pow(perm.generator, stride, prime)
        end = perm.positions
        ports = self.ports
        n_ports = len(ports)
        if len(self.intervals) == 1 and not self.hostnames and not self.endpoints and n_ports == 1:
            yield from self._walk_single(x, step, prime, position, stride, end)
            return
        # Cumulative offsets: addresses first (in interval order), then hostnames.
        starts: list[int] = []
        bases: list[int] = []
        versions: list[int] = []
        acc = 0
        for v, s, e in self.intervals:
            starts.append(acc)
            bases.append(s)
            versions.append(v)
            acc += e - s
        names = self.hostnames
        n_addr = acc * n_ports
        n_named = n_addr + len(names) * n_ports
        endpoints = self.endpoints
        ntoa = socket.inet_ntoa
        while position < end:
            if x <= total:
                idx = x - 1
                if idx < n_addr:
                    at, port = divmod(idx, n_ports)
                    k = bisect_right(starts, at) - 1
                    value = bases[k] + at - starts[k]
                    ip = ntoa(value.to_bytes(4, "big")) if versions[k] == 4 else _format_v6(value)
                    yield Target(ip, None, ports[port], position)
                elif idx < n_named:
                    at, port = divmod(idx - n_addr, n_ports)
                    yield Target(None, names[at], ports[port], position)
                else:
                    ep = endpoints[idx - n_named]
                    yield Target(ep.ip, ep.hostname, ep.port, position)
            x = x * step % prime
            position += stride

    def _walk_single(
        self, x: int, step: int, prime: int, position: int, stride: int, end: int
    ) -> Iterator[Target]:
        # The common case (one CIDR) without the bisect: the hot loop of a census.
        version, base, stop = self.intervals[0]
        total = stop - base
        port = self.port
        offset = base - 1
        if version == 4:
            ntoa = socket.inet_ntoa
            make = Target
            while position < end:
                if x <= total:
                    yield make(ntoa((offset + x).to_bytes(4, "big")), None, port, position)
                x = x * step % prime
                position += stride
        else:
            while position < end:
                if x <= total:
                    yield Target(_format_v6(offset + x), None, port, position)
                x = x * step % prime
                position += stride

    def refusal(self, ip: str) -> str | None:
        """Why an address must not be scanned ("excluded"/"reserved"), or None.

        Needed for every address that did not come out of the interval arithmetic
        (resolved hostnames) and for IPv6 addresses, whose Teredo or NAT64 local-use
        spelling of an IPv4 address cannot be cut as an interval (embedded.py).
        """
        try:
            # A dotted quad, as inet_pton and ipaddress both read it (four decimal octets,
            # no leading zeros): a tenth of ipaddress's cost on every address of a scan.
            version, value = 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
        except (OSError, ValueError):  # anything else (IPv6, zone ids, NULs): ipaddress
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
            version, value = addr.version, int(addr)
        if refused_as(self.exclusions.intervals, version, value):
            return "excluded"
        if not self.allow_private and refused_as(RESERVED, version, value):
            return "reserved"
        return None

    def screen(self, ip: str, hostname: str | None) -> str | None:
        """The last check before every probe: why this target must not be touched, or None.

        The space's own addresses are clean by construction (interval arithmetic), but
        resolved hostnames, Teredo spellings and streamed list entries are not, and the
        check costs microseconds next to a probe's milliseconds: so every address is
        checked here, whatever its origin.
        """
        return self.refusal(ip)

    def iter_excluded(self, limit: int | None = None) -> Iterator[Target]:
        """Requested addresses dropped by the exclusion files, in address order (index -1),
        for callers that record them as `blocklisted`; `limit` bounds a huge overlap."""
        requested = list(self.requested)
        if not self.allow_private:
            requested, _ = subtract(requested, RESERVED)
        for emitted, (version, value) in enumerate(self.exclusions.addresses(requested)):
            if limit is not None and emitted >= limit:
                return
            ip = _format_v4(value) if version == 4 else _format_v6(value)
            for port in self.ports:
                yield Target(ip, None, port, -1)


async def resolve(
    name: str,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109  (the bound is the contract)
    limit: int = 16,
    family: int = socket.AF_UNSPEC,
) -> list[str]:
    """Addresses of a hostname (IPv4 and IPv6, resolver order, duplicates removed).

    Bounded in time (`timeout`) and size (`limit`); raises ResolutionError with the reason.
    The bound lives here rather than in the caller's asyncio.timeout so that every
    resolution is bounded even when the orchestrator forgets to wrap it.
    """
    try:
        found = await asyncio.wait_for(dns.addresses(name, family=family), timeout)
    except TimeoutError:
        raise ResolutionError(f"{name}: no answer within {timeout:g} s") from None
    except dns.LookupFailed as exc:
        raise ResolutionError(f"{name}: {exc}") from None
    seen: dict[str, None] = {}
    for text in found:
        address = text.split("%", 1)[0]  # drop an IPv6 zone id
        seen.setdefault(address, None)
        if len(seen) >= limit:
            break
    if not seen:
        raise ResolutionError(f"{name}: no addresses")
    return list(seen)


__all__ = [
    "Endpoint",
    "ResolutionError",
    "Spec",
    "Target",
    "TargetSpace",
    "parse_endpoint",
    "parse_hostname",
    "parse_ports",
    "parse_shard",
    "read_specs",
    "resolve",
]
