"""Windows event logs (`*.evtx`, any channel) via the `evtx` package (pyevtx-rs).

The package (Rust, well kept, fast) renders each record as JSON; Linux has no message
DLLs, so the rendered Message is missing and rules match the EventData values, mapped by
`events.record_from_event` (the one mapping for EVTX and SIEM exports alike).

A damaged record costs only itself: the package raises for it and the iteration goes on
with the next one.  The package would drop the rest of a 64 KiB chunk after a damaged
record header or chunk signature, so such files are first mended in a temporary copy
(`evtxrepair.py`); every loss is counted and said.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from exwatch.hostcheck.parsers.events import file_records, record_from_event
from exwatch.hostcheck.parsers.evtxrepair import mend
from exwatch.hostcheck.records import FileStats, Kind, Record

EVTX_MAGIC = b"ElfFile\x00"
# Errors in a row after which the file is treated as unreadable from there on (each
# error consumes a record, so this only bounds a file of nothing but damage).
MAX_ERRORS_IN_A_ROW = 10_000


class EvtxParser:
    kind = Kind.EVTX
    data_format = "Windows EVTX event log"

    def parse_file(
        self, path: Path, rel: str, stats: FileStats, meta: dict[str, str] | None = None
    ) -> Iterator[Record]:
        return file_records(path, stats, lambda fh: self.parse_stream(fh, rel, stats))

    def parse_stream(self, fh: IO[bytes], rel: str, stats: FileStats) -> Iterator[Record]:
        """Records of an EVTX file opened for reading (a file or a zip member copy)."""
        magic = fh.read(8)
        fh.seek(0)
        if magic != EVTX_MAGIC:
            stats.error = "not an EVTX file (no ElfFile header)"
            return
        with tempfile.TemporaryFile(prefix="exwatch-evtx-") as mended:
            spans = mend(fh, mended)
            if spans:
                stats.warn(
                    f"damaged or cut in {spans} places (record headers, chunk signatures or "
                    "the end): mended in a copy, so only the damaged records are lost"
                )
            yield from self._records(mended if spans else fh, rel, stats)

    def _records(self, fh: IO[bytes], rel: str, stats: FileStats) -> Iterator[Record]:
        from evtx import PyEvtxParser

        fh.seek(0)
        try:
            records = PyEvtxParser(fh, number_of_threads=1).records_json()
        except (OSError, RuntimeError, ValueError) as exc:
            stats.error = f"not a readable EVTX file: {exc}"
            return
        in_a_row = 0
        while True:
            try:
                item: Any = next(records)
            except StopIteration:
                break
            except (OSError, RuntimeError, ValueError) as exc:
                stats.bad(stats.lines + 1)
                stats.lines += 1
                stats.warn(f"damaged record after {stats.records} good ones: {exc}"[:300])
                in_a_row += 1
                if in_a_row >= MAX_ERRORS_IN_A_ROW:
                    stats.gave_up = True
                    stats.warn(f"stopped after {in_a_row} damaged records in a row")
                    break
                continue
            in_a_row = 0
            stats.lines += 1
            record_id = item.get("event_record_id") if isinstance(item, dict) else None
            number = record_id if isinstance(record_id, int) else None
            try:
                event = json.loads(item["data"])
            except (KeyError, TypeError, ValueError):
                stats.bad(number)
                continue
            rec = record_from_event(event, rel, number)
            if rec is None:
                stats.bad(number)
                continue
            stats.records += 1
            stats.source(rec.extra["_source"], 1, rec.timestamp)
            stats.see_timestamp(rec.timestamp)
            yield rec
        if stats.records == 0:
            stats.warn("no event records could be read from this file")

    def parse_text(self, text: str, rel: str = "<example>") -> tuple[list[Record], FileStats]:
        """One event as JSON text in any shape `events` knows (self-test examples)."""
        stats = FileStats(file=rel, kind=self.kind)
        try:
            event = json.loads(text)
        except ValueError:
            stats.bad(1)
            return [], stats
        rec = record_from_event(event, rel, None)
        if rec is None:
            stats.bad(1)
            return [], stats
        stats.records = 1
        return [rec], stats


def record_from_json(event: dict[str, Any], rel: str, record_id: int | None) -> Record:
    """The `evtx` package's JSON shape as a Record (kept for callers of the old name)."""
    rec = record_from_event(event, rel, record_id)
    if rec is None:
        raise ValueError("not an event")
    return rec


__all__ = ["EVTX_MAGIC", "EvtxParser", "record_from_json"]
