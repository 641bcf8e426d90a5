"""Target lists (`-l FILE`, `-` for stdin) read as a stream: ten million lines cost no memory.

A list is never held: its lines are read as the scan needs them, so the first probe starts
at once and memory stays flat whatever the list's length (issue 11 #8: 10^7 addresses on
stdin took 128 s and 5.2 GB before the first probe, and the list was stored in the scan's
parameters).  The scan's parameters record each file's path, size and SHA-256 instead, so
`--resume` can tell the same list from another.

Order: lines are taken in file order, sharded by their rank (target k of the stream belongs
to shard k mod n, so shards and workers are disjoint); a file's targets are then shuffled
within a seeded window of `WINDOW` targets, so one network's addresses listed together are
not probed back to back (stdin is taken as it comes: see `TargetStream.iter`).
A CIDR or range line is expanded lazily in its own seeded order.

Every line becomes records: a line that is not a target becomes an `invalid-target` record
naming file:line; an address is screened like any other (exclusions, reserved ranges, every
IPv6 spelling of IPv4) when it is probed, and a refused one gets a `blocklisted` record.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from exwatch.errors import UsageError
from exwatch.scan.exclusions import Exclusions, parse_interval, strip_comment
from exwatch.scan.runner import prefetched
from exwatch.scan.targets import Target, TargetSpace, parse_endpoint, parse_hostname

WINDOW = 16_384
# A block of a list holding nothing but dotted-quad lines: counted without parsing.
_NOT_PLAIN = re.compile(rb"[^0-9.\n]")


def _v6(value: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(value)  # ip_address(int) would read a small value as IPv4


_STDIN = "-"


@dataclass(frozen=True, slots=True)
class ListSource:
    """One target list: a file path, or `-` for standard input."""

    path: str

    @property
    def is_stdin(self) -> bool:
        return self.path == _STDIN

    def check(self) -> None:
        if not self.is_stdin and not Path(self.path).is_file():
            raise UsageError(f"target list not found: {self.path}")

    def identity(self) -> dict[str, Any]:
        """What the scan's parameters keep of the list: path, size and digest, not lines."""
        if self.is_stdin:
            return {"path": "<stdin>"}
        path = Path(self.path)
        digest = hashlib.sha256()
        size = lines = 0
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    lines += chunk.count(b"\n")
        except OSError as exc:
            raise UsageError(f"cannot read target list {path}: {exc.strerror}") from None
        return {
            "path": str(path.resolve()),
            "bytes": size,
            "sha256": digest.hexdigest(),
            "lines": lines,
        }

    def lines(self) -> Iterator[tuple[str, str]]:
        """(text, origin) of each non-blank, non-comment line."""
        if self.is_stdin:
            yield from _lines(sys.stdin, "<stdin>")
            return
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                yield from _lines(handle, self.path)
        except OSError as exc:
            raise UsageError(f"cannot read target list {self.path}: {exc.strerror}") from None


MAX_LINE = 4096  # characters; a target is far shorter, a list from elsewhere may not be


def _lines(handle: TextIO, label: str) -> Iterator[tuple[str, str]]:
    """(text, origin) of each target line; an over-long line (a file with no newlines, a
    binary) is read in bounded pieces and yields a text that no parser accepts."""
    number = 0
    while True:
        raw = handle.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE and not raw.endswith("\n"):
            while (rest := handle.readline(1 << 16)) and not rest.endswith("\n"):
                pass  # skip the rest of the line without holding it
            yield f"<line longer than {MAX_LINE} characters>", f"{label}:{number}"
            continue
        text = strip_comment(raw)
        if text:
            yield text, f"{label}:{number}"


@dataclass(frozen=True)
class TargetStream:
    """The targets of one or more lists, read lazily (see the module docstring)."""

    sources: tuple[ListSource, ...]
    ports: tuple[int, ...]
    allow_private: bool
    exclusions: Exclusions
    tls: bool = True

    def _expand(self, text: str, origin: str, seed: int) -> Iterator[Target]:
        """The targets of one line (position -1: screened when probed)."""
        port = self.ports[0]
        try:
            # The common line, a dotted-quad IPv4 address, without ipaddress's cost (glibc's
            # inet_pton takes exactly four decimal parts without leading zeros: canonical).
            socket.inet_pton(socket.AF_INET, text)
        except OSError:
            pass
        else:
            for p in self.ports:
                yield Target(text, None, p, -1)
            return
        try:
            interval = parse_interval(text)
            endpoint = parse_endpoint(text, tls=self.tls) if interval is None else None
        except UsageError as exc:
            yield Target(None, None, port, -1, f"{origin}: {exc}")
            return
        if interval is not None:
            version, value, end = interval
            if end - value == 1:  # one address: the common case, no space to build
                address = str(ipaddress.ip_address(value) if version == 4 else _v6(value))
                for p in self.ports:
                    yield Target(address, None, p, -1)
                return
            try:
                space = self._space(text)
            except UsageError as exc:
                yield Target(None, None, port, -1, f"{origin}: {exc}")
                return
            for t in space.iter(seed):
                yield t._replace(position=-1)
            return
        if endpoint is not None:
            yield Target(endpoint.ip, endpoint.hostname, endpoint.port, -1)
            return
        name = parse_hostname(text)
        if name is None:
            yield Target(
                None,
                None,
                port,
                -1,
                f"{origin}: not an address, CIDR, range, host:port, URL or hostname: {text[:80]!r}",
            )
            return
        for p in self.ports:
            yield Target(None, name, p, -1)

    def _space(self, text: str) -> TargetSpace:
        """The targets of a CIDR or range line (exclusions and reserved ranges removed)."""
        return TargetSpace.from_specs(
            [text],
            allow_private=self.allow_private,
            exclusions=self.exclusions,
            ports=self.ports,
            tls=self.tls,
        )

    def _line_count(self, text: str) -> int:
        """How many targets `_expand` makes of one line, without expanding it."""
        per_port = len(self.ports)
        try:
            socket.inet_pton(socket.AF_INET, text)
        except OSError:
            pass
        else:
            return per_port
        try:
            interval = parse_interval(text)
            endpoint = parse_endpoint(text, tls=self.tls) if interval is None else None
        except UsageError:
            return 1  # one invalid-target record
        if interval is not None:
            _version, value, end = interval
            if end - value == 1:
                return per_port
            try:
                return self._space(text).count
            except UsageError:
                return 1
        if endpoint is not None:
            return 1
        return per_port if parse_hostname(text) is not None else 1

    def _count_text(self, block: bytes) -> int:
        total = 0
        for raw in block.split(b"\n"):
            if len(raw) > MAX_LINE:
                total += 1  # read as one over-long, invalid line
                continue
            text = strip_comment(raw.decode("utf-8", errors="replace"))
            if text:
                total += self._line_count(text)
        return total

    def _source_count(self, source: ListSource) -> int | None:
        """Exact number of targets a list file gives (CIDR and range lines by their size),
        reading plain address blocks at memory speed; None for stdin."""
        if source.is_stdin:
            return None
        total = 0
        tail = b""
        try:
            with open(source.path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    chunk = tail + chunk
                    cut = chunk.rfind(b"\n") + 1
                    body, tail = chunk[:cut], chunk[cut:]
                    if len(tail) > MAX_LINE:
                        # A line without end in sight: one invalid line, not held in memory.
                        total += 1
                        while (more := handle.read(1 << 16)) and b"\n" not in more:
                            pass
                        tail = more[more.find(b"\n") + 1 :] if more else b""
                    if body and not _NOT_PLAIN.search(body) and b"\n\n" not in body:
                        total += body.count(b"\n") * len(self.ports)
                    else:
                        total += self._count_text(body)
        except OSError:
            return None
        return total + (self._count_text(tail) if tail else 0)

    def iter(self, seed: int, shard: tuple[int, int] = (0, 1)) -> Iterator[Target]:
        """This shard's targets; a file's are shuffled within a seeded window.

        Standard input is not shuffled: it is usually another scanner's output (zmap and
        masscan print in their own random order) and may come slowly, and a window would
        hold its targets back until it filled.
        """
        i, n = shard
        rng = random.Random(f"exwatch-list:{seed}:{i}/{n}")  # noqa: S311  (an order, no secret)
        window: list[Target] = []
        k = 0
        for source in self.sources:
            for text, origin in source.lines():
                for target in self._expand(text, origin, seed):
                    mine = k % n == i
                    k += 1
                    if not mine:
                        continue
                    if source.is_stdin:
                        yield target
                    elif len(window) < WINDOW:
                        window.append(target)
                    else:
                        at = rng.randrange(WINDOW)
                        window[at], target = target, window[at]
                        yield target
        rng.shuffle(window)
        yield from window

    def count(self) -> int | None:
        """Exact number of targets of all lists; None when one is stdin."""
        total = 0
        for source in self.sources:
            found = self._source_count(source)
            if found is None:
                return None
            total += found
        return total


@dataclass(frozen=True)
class ScanTargets:
    """Everything one scan iterates: the target space (arguments, in seeded order), then
    the streamed lists."""

    space: TargetSpace
    stream: TargetStream | None = None

    def iter(self, seed: int, shard: tuple[int, int] = (0, 1)) -> Iterator[Target]:
        yield from self.space.iter(seed, shard)
        if self.stream is not None:
            yield from self.stream.iter(seed, shard)

    def for_loop(
        self, seed: int, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[Target] | AsyncIterator[Target]:
        """What the event loop iterates: lists are read by a thread (`prefetched`), so a
        slow pipe never blocks the loop; the permutation alone is iterated in place."""
        it = self.iter(seed, shard)
        return it if self.stream is None else prefetched(it)

    def shard_count(self, shard: tuple[int, int]) -> int | None:
        """Targets of one shard; None when a list's length cannot be known (stdin)."""
        count = self.space.shard_count(shard)
        if self.stream is None:
            return count
        listed = self.stream.count()
        if listed is None:
            return None
        i, n = shard
        # Target k of the lists belongs to shard k mod n (see TargetStream.iter).
        return count + listed // n + (1 if i < listed % n else 0)


__all__ = ["WINDOW", "ListSource", "ScanTargets", "TargetStream"]
