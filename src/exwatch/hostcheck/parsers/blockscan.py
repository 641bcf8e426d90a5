"""Fast scan of header-driven text logs: blocks of bytes, parse only the lines that matter.

`FieldedParser.parse_file` turns every line into a Record (about 20 MB/s).  For a host
check only lines some rule could match need a Record, so this reader takes the file in
large blocks (split at the last newline, the rest carried over) and sorts the lines of
each block into two groups:

* plain lines: ASCII, no NUL, no stray carriage return, the strict timestamp prefix of the
  format, exactly the header's number of fields (CSV quoting allowed when every quoted
  field is well formed).  They are counted in bulk: lines, records, first and last
  timestamps.  Those the rules' needles (`prefilter.py`, one multi-pattern search over
  the lower-cased block) point at are parsed like any line.
* every other line (headers, comments, blank, bad, truncated, non-ASCII, NUL, odd quoting,
  very long) goes through the parser's own per-line state machine (`LineState`), in order.

So findings and the per-file counts (lines, records, bad and truncated lines, header blocks,
decode fallbacks, warnings, give-up, first/last timestamps) are those of `parse_file`;
tests/hostcheck/test_blockscan.py compares both paths.  UTF-16 files and formats without
a strict line layout (OABGenerator) take `parse_file` unchanged.
"""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate, repeat
from pathlib import Path
from typing import BinaryIO

from exwatch.hostcheck.parsers.fielded import FieldedParser, LineState
from exwatch.hostcheck.parsers.lines import MAX_LINE_BYTES
from exwatch.hostcheck.prefilter import KindPrefilter
from exwatch.hostcheck.records import FileStats, Record

BLOCK_SIZE = 2 << 20  # measured best of 1-16 MiB (cache-friendly)
# Lines this long take the per-line path (csv refuses fields over 128 KiB; the reader
# skips lines over MAX_LINE_BYTES): both are errors the bulk path does not model.
_LONG_LINE = 100_000

# Strict prefixes of plain lines: fixed-width timestamps, so the smallest and largest line
# of a run carry the run's first and last timestamp.
_CSV_PREFIX = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z,")
_W3C_PREFIX = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
# A well-formed quoted CSV field (opening quote at a field start, `""` escapes, closing
# quote before a comma or the line end): csv reads it as one field, so once removed the
# commas left are the field separators.
_QUOTED_FIELD = re.compile(rb'"(?<![^,\n]")[^"\n]*(?:""[^"\n]*)*"(?![^,\r\n])')
_NON_ASCII = re.compile(rb"[\x80-\xff]+")
_NUL = re.compile(rb"\x00+")
_QUOTE = re.compile(rb'"')
_STRAY_CR = re.compile(rb"\r(?!\n)")


def block_layout(parser: FieldedParser, state: LineState) -> str | None:
    """ "csv" / "w3c" when the current header allows bulk reading, else None."""
    layout = parser.block_layout
    if layout == "w3c" and (state.index.get("date") != 0 or state.index.get("time") != 1):
        return None
    return layout


def scan_file(
    parser: FieldedParser,
    path: Path,
    rel: str,
    stats: FileStats,
    meta: dict[str, str] | None,
    prefilter: KindPrefilter,
    block_size: int = BLOCK_SIZE,
) -> Iterator[Record]:
    """Records of the lines that could matter to the rules behind `prefilter`, plus every
    line the bulk path cannot account for; `stats` as `parser.parse_file` would fill it."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
            fh.seek(0)
            if parser.block_layout is None or head.startswith(
                (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
            ):
                fh.close()
                yield from parser.parse_file(path, rel, stats, meta)
                return
            stats.size = path.stat().st_size
            if head.startswith(codecs.BOM_UTF8):
                fh.seek(3)
            yield from _scan(fh, parser, LineState(parser, rel, stats, meta), prefilter, block_size)
    except OSError as exc:
        stats.error = f"cannot read: {exc.strerror or exc}"


def _scan(
    fh: BinaryIO,
    parser: FieldedParser,
    state: LineState,
    prefilter: KindPrefilter,
    block_size: int,
) -> Iterator[Record]:
    stats = state.stats
    number = 0  # line number of the last line consumed
    carry = b""
    skipping = False  # inside an over-long line: drop bytes up to its newline
    while True:
        data = fh.read(block_size)
        if not data:
            break
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            data = data[nl + 1 :]
            skipping = False
        buf = carry + data if carry else data
        cut = buf.rfind(b"\n")
        if cut >= 0:
            carry = buf[cut + 1 :]
            yield from _region(buf[: cut + 1], number, parser, state, prefilter)
            number += buf.count(b"\n", 0, cut + 1)
        else:
            carry = buf
        if len(carry) >= MAX_LINE_BYTES:
            number += 1
            _too_long(stats, number)
            carry = b""
            skipping = True
    if carry and not skipping:
        rec = _exact_line(carry, number + 1, state)
        if rec is not None:
            yield rec


def _too_long(stats: FileStats, number: int) -> None:
    # As lines.read_lines: counted bad, not passed to the parser.
    stats.bad(number)
    stats.warn(f"line {number}: longer than {MAX_LINE_BYTES} bytes, skipped")


def _exact_line(raw: bytes, number: int, state: LineState) -> Record | None:
    """One line through the per-line path (decoding as lines.read_lines does)."""
    if len(raw) >= MAX_LINE_BYTES:
        _too_long(state.stats, number)
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
        state.stats.decode_fallbacks += 1
    return state.feed(number, text.rstrip("\r\n"))


def _line_indexes(buf: bytes, positions: Iterable[int]) -> set[int]:
    """0-based line index of each byte offset (offsets in ascending order)."""
    out: set[int] = set()
    index = 0
    last = 0
    for pos in positions:
        index += buf.count(b"\n", last, pos)
        last = pos
        out.add(index)
    return out


def _region(
    region: bytes,
    number0: int,
    parser: FieldedParser,
    state: LineState,
    prefilter: KindPrefilter,
) -> Iterator[Record]:
    """Lines of `region` (complete lines, ending with a newline) after line `number0`.

    Everything that does not depend on the current header (timestamp prefix, separator
    counts, odd bytes, needle hits) is computed once for the region; the walk then goes
    from one "special" line (a header, comment, bad or odd line) to the next, so a file
    of many header blocks costs no more than one of a single block.
    """
    raw_lines = region.split(b"\n")
    raw_lines.pop()
    count = len(raw_lines)
    layout = parser.block_layout
    lines = raw_lines  # as seen by the bulk checks (quoted fields removed)
    stamp: Callable[[bytes], str] = _csv_stamp
    special: set[int] = set()
    if not region.isascii():
        special |= _line_indexes(region, (m.start() for m in _NON_ASCII.finditer(region)))
    if region.find(b"\x00") >= 0:
        special |= _line_indexes(region, (m.start() for m in _NUL.finditer(region)))
    crs = region.count(b"\r")
    if crs and crs != region.count(b"\r\n"):
        special |= _line_indexes(region, (m.start() for m in _STRAY_CR.finditer(region)))
    if max(map(len, raw_lines), default=0) >= _LONG_LINE:
        special |= {i for i, line in enumerate(raw_lines) if len(line) >= _LONG_LINE}
    if layout == "csv":
        prefix, sep = _CSV_PREFIX, b","
        if region.find(b'"') >= 0:
            stripped = _QUOTED_FIELD.sub(b"", region)
            if stripped.find(b'"') >= 0:
                special |= _line_indexes(stripped, (m.start() for m in _QUOTE.finditer(stripped)))
            lines = stripped.split(b"\n")
            lines.pop()
    else:
        prefix, sep, stamp = _W3C_PREFIX, b" ", _w3c_stamp
    matched = list(map(prefix.match, lines))
    if None in matched:
        special |= {i for i, m in enumerate(matched) if m is None}
    seps = list(map(bytes.count, lines, repeat(sep)))
    candidates: set[int] = set()
    if prefilter.every_line:
        candidates = set(range(count))
    else:
        lowered = region.lower()
        hits = prefilter.hits(lowered)
        if hits:
            # Offset where each next line starts: a hit's line by bisection.
            starts = list(accumulate(map((1).__add__, map(len, raw_lines))))
            by_line: dict[int, list[int]] = {}
            for pos, which in hits:
                by_line.setdefault(bisect_right(starts, pos), []).append(which)
            low_lines = lowered.split(b"\n") if len(by_line) > count // 64 else None
            for index, found in by_line.items():
                if index in special:
                    continue
                low = low_lines[index] if low_lines is not None else raw_lines[index].lower()
                if prefilter.line_ok(low, found):
                    candidates.add(index)
    stops = sorted(special)
    stops.append(count)  # sentinel: the end of the region
    sorted_candidates = sorted(candidates)
    cand_at = 0
    start = 0
    for stop in stops:
        # Lines start..stop-1 all have the format's timestamp prefix, so none of them is a
        # header: the current header holds for the whole segment.
        if start < stop:
            if _bulk_ok(parser, state):
                want = state.width - 1
                events = [i for i in range(start, stop) if seps[i] != want]
                while cand_at < len(sorted_candidates) and sorted_candidates[cand_at] < stop:
                    events.append(sorted_candidates[cand_at])
                    cand_at += 1
                prev = start - 1
                for index in sorted(set(events)):
                    if index > prev + 1:
                        _plain(state, lines[prev + 1 : index], stamp)
                    rec = _exact_line(raw_lines[index], number0 + index + 1, state)
                    if rec is not None:
                        yield rec
                    prev = index
                if prev + 1 < stop:
                    _plain(state, lines[prev + 1 : stop], stamp)
            else:
                for index in range(start, stop):
                    rec = _exact_line(raw_lines[index], number0 + index + 1, state)
                    if rec is not None:
                        yield rec
        while cand_at < len(sorted_candidates) and sorted_candidates[cand_at] <= stop:
            cand_at += 1
        if stop < count:
            rec = _exact_line(raw_lines[stop], number0 + stop + 1, state)
            if rec is not None:
                yield rec
        start = stop + 1


def _bulk_ok(parser: FieldedParser, state: LineState) -> bool:
    """Can plain lines be counted in bulk under the current header?"""
    return block_layout(parser, state) is not None


def _csv_stamp(line: bytes) -> str:
    return line[:24].decode("ascii")


def _w3c_stamp(line: bytes) -> str:
    return f"{line[:10].decode('ascii')}T{line[11:19].decode('ascii')}Z"


def _plain(state: LineState, run: list[bytes], stamp: Callable[[bytes], str]) -> None:
    # Plain lines share a fixed-width timestamp prefix: min/max order them by it.
    state.plain_records(len(run), stamp(min(run)), stamp(max(run)))


__all__ = ["BLOCK_SIZE", "block_layout", "scan_file"]
