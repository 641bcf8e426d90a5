"""Loading scan results (JSON lines) from other machines or shards into the store.

Idempotent twice over: a file whose content (SHA-256) was ingested before is skipped, and a
row whose target (scan_id, ip, port) is already stored is not added again - so a JSONL that
repeats hosts (a resumed scan, concatenated shards) counts each target once.  Every field is
validated (store/rows.py); a rejected line is reported with its number and reason.  Lines
without a scan_id are refused unless `scan_id` names the scan they belong to: a scan invented
for them would take over "latest" in every report.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from exwatch.errors import UsageError
from exwatch.store.base import KEEP_REJECTIONS, LoadStats, Rejection, Store
from exwatch.store.rows import valid_scan_id


@dataclass
class FileOutcome:
    path: str
    sha256: str
    already_ingested: bool
    stats: LoadStats


@dataclass
class IngestSummary:
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return sum(f.stats.lines for f in self.files)

    @property
    def new_rows(self) -> int:
        return sum(f.stats.new_rows for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.stats.duplicates for f in self.files)

    @property
    def bad_lines(self) -> int:
        return sum(f.stats.bad_lines for f in self.files)

    @property
    def loaded_nothing(self) -> bool:
        """No file gave a single valid line (new or already stored)."""
        return self.new_rows + self.duplicates == 0

    def rejections(self) -> Iterator[tuple[str, Rejection]]:
        for f in self.files:
            for r in f.stats.rejections:
                yield f.path, r

    def one_line(self) -> str:
        skipped = sum(1 for f in self.files if f.already_ingested)
        again = f" ({skipped} already ingested)" if skipped else ""
        return (
            f"{len(self.files)} files{again}, {self.lines} lines, {self.new_rows} new rows,"
            f" {self.duplicates} duplicates, {self.bad_lines} bad lines"
        )


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text); a line that is not UTF-8 comes back as text that is not JSON."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, "\x00 not UTF-8"


def ingest_file(
    store: Store,
    path: str | Path,
    *,
    label: str | None = None,
    scan_id: str | None = None,
    keep: int | None = KEEP_REJECTIONS,
) -> FileOutcome:
    name = label or str(path)
    sha = file_sha256(path)
    seen = store.ingested_file(sha)
    if seen is not None:
        return FileOutcome(name, sha, True, LoadStats(seen, 0, seen, 0))
    stats = store.load_lines(
        numbered_lines(path), default_scan_id=scan_id, name=Path(name).name, keep=keep
    )
    if stats.new_rows or stats.duplicates:
        # A file that gave nothing may be fixed and loaded again: only remember good ones.
        store.record_ingested_file(sha, name, stats)
    return FileOutcome(name, sha, False, stats)


def ingest_files(
    store: Store,
    paths: Iterable[str | Path],
    *,
    scan_id: str | None = None,
    keep: int | None = KEEP_REJECTIONS,
) -> IngestSummary:
    """Ingest JSONL files (`-` reads stdin) into the store; bad lines are reported, not fatal."""
    paths = [str(p) for p in paths]
    if scan_id is not None and not valid_scan_id(scan_id):
        raise UsageError(f"--scan-id {scan_id!r}: letters, digits and . _ : @ + - only")
    for path in paths:
        if path != "-" and not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")
    summary = IngestSummary()
    for path in paths:
        if path == "-":
            fd, tmp = tempfile.mkstemp(prefix="exwatch-stdin-", suffix=".jsonl")
            try:
                with os.fdopen(fd, "wb") as handle:
                    shutil.copyfileobj(sys.stdin.buffer, handle)
                summary.files.append(
                    ingest_file(store, tmp, label="<stdin>", scan_id=scan_id, keep=keep)
                )
            finally:
                os.unlink(tmp)
        else:
            summary.files.append(ingest_file(store, path, scan_id=scan_id, keep=keep))
    return summary


__all__ = ["FileOutcome", "IngestSummary", "file_sha256", "ingest_file", "ingest_files"]
