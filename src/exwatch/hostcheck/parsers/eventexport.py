"""Event logs handed over as JSON: `evtx_dump` output, JSON lines, SIEM exports.

The reader streams JSON values one after another, whatever separates them: newlines
(JSON lines), commas and brackets (one JSON array), or `evtx_dump`'s "Record N" lines
between pretty-printed objects.  Wrappers that hold a list of events (`value`,
`results`, `records`, `events`, Elastic's `hits.hits[]._source`) are opened.  Each value
goes through `events.record_from_event`; what is not an event is counted and skipped, and
a syntax error skips to the next line, never to the end of the file.  Memory is bounded
by the largest single value (MAX_VALUE_CHARS).
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from exwatch.hostcheck.parsers.events import file_records, record_from_event
from exwatch.hostcheck.records import FileStats, Kind, Record

READ_CHARS = 1 << 20
MAX_VALUE_CHARS = 16 << 20  # one event larger than this is damage, not an event
_SKIP = " \t\r\n,[]\ufeff"
_WRAPPERS = ("value", "results", "records", "events", "rows", "data")
_decoder = json.JSONDecoder()


def _incomplete(exc: json.JSONDecodeError, buf: str) -> bool:
    """Did decoding fail only because the buffer ends inside the value?"""
    if exc.pos >= len(buf) - 1:
        return True
    # A string cut by the buffer end: JSON strings hold no raw newline, so an unterminated
    # string with no newline after it may simply continue in the next read.
    return exc.msg.startswith("Unterminated string") and "\n" not in buf[exc.pos :]


def json_values(stream: IO[str], stats: FileStats) -> Iterator[tuple[int, Any]]:
    """(ordinal, value) of each top-level JSON value in the stream."""
    buf = ""
    pos = 0
    eof = False
    ordinal = 0

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = stream.read(READ_CHARS)
        if not chunk:
            eof = True
            return False
        buf = buf[pos:] + chunk
        pos = 0
        return True

    while True:
        while pos < len(buf) and buf[pos] in _SKIP:
            pos += 1
        if pos >= len(buf):
            if more():
                continue
            return
        if buf[pos] != "{":
            # "Record N" lines of evtx_dump, or junk: skip the line.
            nl = buf.find("\n", pos)
            while nl < 0:
                if len(buf) - pos > MAX_VALUE_CHARS:
                    pos = len(buf) - 16  # a line this long is junk: keep only its tail
                if not more():
                    break
                nl = buf.find("\n", pos)
            line = buf[pos : pos + 8] if nl < 0 else buf[pos:nl]
            if not line.startswith("Record "):
                ordinal += 1
                stats.bad(ordinal)
            pos = nl + 1 if nl >= 0 else len(buf)
            continue
        try:
            value, end = _decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            if _incomplete(exc, buf) and len(buf) - pos < MAX_VALUE_CHARS and more():
                continue
            ordinal += 1
            stats.bad(ordinal)
            stats.warn(f"value {ordinal}: not JSON ({exc.msg})")
            nl = buf.find("\n", pos + 1)
            pos = nl + 1 if nl >= 0 else len(buf)
            continue
        ordinal += 1
        pos = end
        yield ordinal, value


def _events_in(value: Any, depth: int = 0) -> Iterator[Any]:
    """The events a value holds: itself, or the items of a wrapper's list."""
    if isinstance(value, list) and depth < 3:
        for item in value:
            yield from _events_in(item, depth + 1)
        return
    if isinstance(value, dict) and depth < 3:
        hits = value.get("hits")
        if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
            for hit in hits["hits"]:
                yield from _events_in(hit.get("_source", hit) if isinstance(hit, dict) else hit)
            return
        for key in _WRAPPERS:
            inner = value.get(key)
            if isinstance(inner, list) and inner and isinstance(inner[0], dict):
                yield from _events_in(inner, depth + 1)
                return
        if isinstance(value.get("_source"), dict):
            yield value["_source"]
            return
    yield value


def text_stream(binary: IO[bytes]) -> io.TextIOWrapper:
    """Decode by BOM: PowerShell writes UTF-16, most tools UTF-8 (with or without BOM)."""
    head = binary.read(4)
    if hasattr(binary, "seek") and binary.seekable():
        binary.seek(0)
        prefix = b""
    else:
        prefix = head
    encoding = "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    raw: IO[bytes] = binary
    if prefix:
        raw = io.BufferedReader(_Prefixed(prefix, binary))
    return io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with bytes already read put back in front."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


class EventExportParser:
    """JSON/JSON-lines event exports; records are `windows:evtx:record` like EVTX ones."""

    kind = Kind.EVTX
    data_format = "event log export (JSON)"

    def parse_file(
        self, path: Path, rel: str, stats: FileStats, meta: dict[str, str] | None = None
    ) -> Iterator[Record]:
        return file_records(path, stats, lambda fh: self.parse_stream(fh, rel, stats))

    def parse_stream(self, binary: IO[bytes], rel: str, stats: FileStats) -> Iterator[Record]:
        stream = text_stream(binary)
        try:
            for ordinal, value in json_values(stream, stats):
                stats.lines += 1
                for event in _events_in(value):
                    rec = record_from_event(event, rel, ordinal)
                    if rec is None:
                        stats.bad(ordinal)
                        continue
                    stats.records += 1
                    stats.source(rec.extra["_source"], 1, rec.timestamp)
                    stats.see_timestamp(rec.timestamp)
                    yield rec
        finally:
            stream.detach()  # the caller closes the underlying file
        if stats.records == 0:
            stats.warn("no events could be read from this export")

    def parse_text(self, text: str, rel: str = "<example>") -> tuple[list[Record], FileStats]:
        stats = FileStats(file=rel, kind=self.kind)
        return list(self.parse_stream(io.BytesIO(text.encode("utf-8")), rel, stats)), stats


__all__ = ["EventExportParser", "json_values", "text_stream"]
