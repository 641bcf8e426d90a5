"""Loading scan results (JSON lines) from other machines or shards into the store.

Idempotent twice over: a file whose content (SHA-256) was ingested before is skipped, and
rows whose identity (scan_id, ip, port, timestamp) is already stored are not added again,
so a file that grew or was concatenated with another loads only what is new.  Records
without a scan_id go to a scan named after the file, with an id derived from the content
so that re-ingesting the same lines lands in the same scan.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from exwatch.errors import UsageError
from exwatch.store.database import LoadStats, Store


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


def ingest_file(store: Store, path: str | Path, *, label: str | None = None) -> FileOutcome:
    name = label or str(path)
    sha = file_sha256(path)
    con = store.connection
    seen = con.execute("SELECT lines FROM ingested_files WHERE sha256 = ?", [sha]).fetchone()
    if seen is not None:
        lines = int(seen[0] or 0)
        return FileOutcome(name, sha, True, LoadStats(lines, 0, lines, 0))
    stats = store.load_jsonl(
        path, default_scan_id=f"ingest-{sha[:12]}", dedup=True, name=Path(name).name
    )
    con.execute(
        "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            sha,
            name,
            datetime.now(UTC),
            stats.lines,
            stats.new_rows,
            stats.duplicates,
            stats.bad_lines,
        ],
    )
    store.refresh_counts(stats.scan_ids)
    return FileOutcome(name, sha, False, stats)


def ingest_files(store: Store, paths: Iterable[str | Path]) -> IngestSummary:
    """Ingest JSONL files (`-` reads stdin) into the store; corrupt lines are only counted."""
    paths = [str(p) for p in paths]
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
                summary.files.append(ingest_file(store, tmp, label="<stdin>"))
            finally:
                os.unlink(tmp)
        else:
            summary.files.append(ingest_file(store, path))
    return summary


__all__ = ["FileOutcome", "IngestSummary", "file_sha256", "ingest_file", "ingest_files"]
