"""The store interface: scans, results, ingest and portable queries, over either backend.

`open_store(--db value)` returns a `Store`; nothing outside `store/` knows which backend it
is.  A backend supplies a handful of primitives (run a statement, fetch rows, stream rows,
a transaction, a named lock, a bulk load into a table); everything else is written once here
in the SQL both backends share (see dialect.py).
"""

# Statements here are assembled from this package's constant table and column names; every
# value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exwatch import __version__
from exwatch.errors import StoreError
from exwatch.store.dialect import Dialect
from exwatch.store.rows import RecordError, typed_row
from exwatch.store.schema import RESULT_COLUMNS, RESULTS, Column

SCAN_STATUSES = ("running", "finished", "interrupted", "ingested")
# How many rejected lines a load keeps with their reasons (ingest -v keeps all).
KEEP_REJECTIONS = 10
_STATUS = RESULT_COLUMNS.index("status")
_SHARD = RESULT_COLUMNS.index("shard")

Row = tuple[Any, ...]
WaitNote = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int  # 1-based line number in the file (or position in the batch)
    reason: str


@dataclass(frozen=True, slots=True)
class LoadStats:
    """Outcome of loading one batch or file: lines seen, rows added, and what was skipped."""

    lines: int  # non-blank lines
    new_rows: int
    duplicates: int
    bad_lines: int  # not JSON, not an object, or a field that fails validation
    scan_ids: tuple[str, ...] = ()  # scans the batch touched
    rejections: tuple[Rejection, ...] = field(default_factory=tuple)


def now() -> datetime:
    return datetime.now(UTC)


def params_json(params: Mapping[str, Any]) -> str:
    # Canonical form, so that resume can compare parameters as text.
    return json.dumps(dict(params), sort_keys=True, default=str)


def _load_json(text: Any) -> Any:
    if text is None:
        return None
    if isinstance(text, str):
        return json.loads(text)
    return text  # psycopg already decoded a json column


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_line(text: str) -> Any:
    """json.loads without NaN/Infinity (neither backend's JSON accepts them)."""
    return json.loads(text, parse_constant=_no_constants)


class Store:
    """A result store.  Use `open_store(...)`; close it (or use `with`)."""

    dialect: Dialect
    location: str  # for messages (a PostgreSQL URL without its password)
    read_only: bool = False

    def __init__(self) -> None:
        # Records `append` could not store (a scanner bug); they are still in the JSON lines
        # output, and finish_scan records the number.
        self.rejected_records = 0

    # -- backend primitives ---------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    def modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT/UPDATE/DELETE; returns the rows it changed."""
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 10_000) -> Iterator[Row]:
        """Rows of a query without holding them all; columns as `query`."""
        raise NotImplementedError

    def columns_of(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[Row]]:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def lock(self, name: str) -> None:
        """Serialise writers on `name` until the transaction ends (no-op where one process
        writes at a time)."""

    def tune_for_aggregation(self) -> None:
        """Give the current transaction's big GROUP BYs room (PostgreSQL's work_mem)."""

    def bulk_insert(self, table: str, columns: Sequence[Column], rows: Iterable[Row]) -> int:
        """Append rows (values in `columns` order) in bulk; returns the rows written."""
        raise NotImplementedError

    def staging_table(self, name: str, columns: Sequence[Column]) -> None:
        """An empty temporary table for the current transaction."""
        raise NotImplementedError

    def drop_staging(self, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {name}")

    def close(self) -> None:
        raise NotImplementedError

    def has_table(self, name: str) -> bool:
        row = self.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
            " AND table_schema = current_schema()",
            [name],
        )
        return bool(row and row[0][0])

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conveniences ---------------------------------------------------------------------

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        names, rows = self.columns_of(sql, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    # -- scans ----------------------------------------------------------------------------

    def start_scan(
        self,
        params: Mapping[str, Any],
        *,
        scan_id: str | None = None,
        name: str | None = None,
        part: str = "1/1",
        targets: int | None = None,
        tool_version: str = __version__,
    ) -> str:
        """Record a running scan (or this shard of a census shared by several processes);
        returns its id.  Joining a census whose shard `part` already ran is refused."""
        joining = scan_id is not None
        scan_id = scan_id or f"{now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        text = params_json(params)
        shard_count = int(part.split("/")[1])
        with self.transaction():
            self.lock(f"scan:{scan_id}")
            existing = self.query("SELECT origin FROM scans WHERE scan_id = ?", [scan_id])
            if existing and not joining:
                raise StoreError(f"scan {scan_id} already exists in {self.location}")
            if not existing:
                self.execute(
                    "INSERT INTO scans (scan_id, name, origin, params, tool_version, status,"
                    " started_at, enrich_generation) VALUES (?, ?, 'scan', ?, ?, 'running', ?, 0)",
                    [scan_id, name, text, tool_version, now()],
                )
            done = self.query(
                "SELECT status FROM scan_parts WHERE scan_id = ? AND part = ?", [scan_id, part]
            )
            if done:
                raise StoreError(
                    f"shard {part} of scan {scan_id} was already scanned into {self.location}"
                    f" ({done[0][0]}); use --resume to finish it, or another --scan-id"
                )
            self.execute(
                "INSERT INTO scan_parts (scan_id, part, shard_count, targets, status, started_at,"
                " host, params) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
                [scan_id, part, shard_count, targets, now(), socket.gethostname(), text],
            )
            self._scan_status(scan_id)
        return scan_id

    def _scan_status(self, scan_id: str) -> None:
        """A census is running while any shard runs, interrupted if any shard was."""
        states = {str(r[0]) for r in self.query(
            "SELECT DISTINCT status FROM scan_parts WHERE scan_id = ?", [scan_id]
        )}  # fmt: skip
        if not states:
            return
        status = (
            "running" if "running" in states
            else "interrupted" if "interrupted" in states
            else "finished"
        )  # fmt: skip
        finished = None if status == "running" else now()
        self.execute(
            "UPDATE scans SET status = ?, finished_at = ? WHERE scan_id = ?",
            [status, finished, scan_id],
        )

    def finish_scan(self, scan_id: str, status: str = "finished", *, part: str = "1/1") -> None:
        """Mark this shard of a scan finished or interrupted, with the scan's row counts."""
        if status not in SCAN_STATUSES:
            raise StoreError(f"unknown scan status {status!r}; one of {', '.join(SCAN_STATUSES)}")
        with self.transaction():
            self.lock(f"scan:{scan_id}")
            self.execute(
                "UPDATE scan_parts SET status = ?, finished_at = ? WHERE scan_id = ? AND part = ?",
                [status, now(), scan_id, part],
            )
            counts: dict[str, int] = self.status_counts(scan_id)
            if self.rejected_records:
                counts["rejected-records"] = self.rejected_records
            self.execute(
                "UPDATE scans SET counts = ? WHERE scan_id = ?", [json.dumps(counts), scan_id]
            )
            self._scan_status(scan_id)

    def find_resumable(self, params: Mapping[str, Any]) -> tuple[str, str] | None:
        """(scan id, shard) of the latest shard run here with exactly these parameters that
        did not finish (interrupted, or still 'running' after a crash), or None."""
        wanted = params_json(params)
        rows = self.query(
            "SELECT p.scan_id, p.part, p.params FROM scan_parts p"
            " WHERE p.status IN ('interrupted', 'running') ORDER BY p.started_at DESC"
        )
        for scan_id, part, stored in rows:
            if stored is not None and params_json(_load_json(stored)) == wanted:
                return str(scan_id), str(part)
        return None

    def resume_scan(self, scan_id: str, part: str = "1/1") -> None:
        """Mark an interrupted shard running again (same id; its done targets are kept)."""
        with self.transaction():
            self.lock(f"scan:{scan_id}")
            self.execute(
                "UPDATE scan_parts SET status = 'running', finished_at = NULL"
                " WHERE scan_id = ? AND part = ?",
                [scan_id, part],
            )
            self._scan_status(scan_id)

    def scan_ids(self) -> list[str]:
        """All scans, oldest first."""
        rows = self.query("SELECT scan_id FROM scans ORDER BY started_at NULLS LAST, scan_id")
        return [str(r[0]) for r in rows]

    def latest_scan_id(self, *, origin: str | None = None) -> str | None:
        sql = "SELECT scan_id FROM scans"
        args: list[Any] = []
        if origin is not None:
            sql += " WHERE origin = ?"
            args.append(origin)
        row = self.query(sql + " ORDER BY started_at DESC NULLS LAST, scan_id DESC LIMIT 1", args)
        return None if not row else str(row[0][0])

    def scan_params(self, scan_id: str) -> dict[str, Any]:
        row = self.query("SELECT params FROM scans WHERE scan_id = ?", [scan_id])
        if not row:
            raise StoreError(f"no scan {scan_id} in {self.location}")
        params = _load_json(row[0][0]) or {}
        return params if isinstance(params, dict) else {}

    def scan_info(self, scan_id: str) -> dict[str, Any]:
        d = self.dialect
        rows = self.dicts(
            "SELECT scan_id, name, origin, params, tool_version, status,"
            f" {d.iso('started_at', micro=True)} AS started_at,"
            f" {d.iso('finished_at', micro=True)} AS finished_at, counts"
            " FROM scans WHERE scan_id = ?",
            [scan_id],
        )
        if not rows:
            raise StoreError(f"no scan {scan_id} in {self.location}")
        info = rows[0]
        for key in ("params", "counts"):
            value = info[key]
            info[key] = (
                json.dumps(value) if value is not None and not isinstance(value, str) else value
            )
        return info

    def scan_parts(self, scan_id: str) -> list[dict[str, Any]]:
        d = self.dialect
        return self.dicts(
            "SELECT part, shard_count, targets, coalesce(recorded, 0) AS recorded, status, host,"
            f" {d.iso('started_at')} AS started_at, {d.iso('finished_at')} AS finished_at"
            " FROM scan_parts WHERE scan_id = ? ORDER BY part",
            [scan_id],
        )

    def status_counts(self, scan_id: str) -> dict[str, int]:
        rows = self.query(
            "SELECT status, count(*) FROM results WHERE scan_id = ? GROUP BY status ORDER BY 1",
            [scan_id],
        )
        return {str(s): int(n) for s, n in rows}

    def refresh_counts(self, scan_ids: Iterable[str]) -> None:
        """Recount a scan's rows per status and per shard (after an ingest)."""
        for scan_id in scan_ids:
            counts = self.status_counts(scan_id)
            self.execute(
                "UPDATE scans SET counts = ?, answered = ? WHERE scan_id = ?",
                [json.dumps(counts), counts.get("success", 0), scan_id],
            )
            shards = self.query(
                "SELECT coalesce(shard, '1/1'), count(*) FROM results WHERE scan_id = ? GROUP BY 1",
                [scan_id],
            )
            for part, n in shards:
                changed = self.modify(
                    "UPDATE scan_parts SET recorded = ? WHERE scan_id = ? AND part = ?",
                    [int(n), scan_id, part],
                )
                if not changed:
                    # A shard known only from its JSON lines: a part of the census too.
                    self.execute(
                        "INSERT INTO scan_parts (scan_id, part, shard_count, status, recorded)"
                        " VALUES (?, ?, ?, 'ingested', ?)",
                        [scan_id, part, int(str(part).split("/")[1]), int(n)],
                    )

    def _count_rows(self, rows: Sequence[Row]) -> None:
        """Keep the per-scan `answered` and per-shard `recorded` counters true as rows land."""
        answered: dict[str, int] = {}
        recorded: dict[tuple[str, str], int] = {}
        for row in rows:
            if row[_STATUS] == "success":
                answered[row[0]] = answered.get(row[0], 0) + 1
            key = (row[0], row[_SHARD] or "1/1")
            recorded[key] = recorded.get(key, 0) + 1
        for scan_id, n in answered.items():
            self.execute(
                "UPDATE scans SET answered = coalesce(answered, 0) + ? WHERE scan_id = ?",
                [n, scan_id],
            )
        for (scan_id, part), n in recorded.items():
            self.execute(
                "UPDATE scan_parts SET recorded = coalesce(recorded, 0) + ?"
                " WHERE scan_id = ? AND part = ?",
                [n, scan_id, part],
            )

    def bump_generation(self, scan_ids: Iterable[str]) -> None:
        """Enrichment of these scans changed: their rollups are stale."""
        ids = sorted(set(scan_ids))
        if ids:
            where, args = self.dialect.in_list("scan_id", ids)
            self.execute(
                f"UPDATE scans SET enrich_generation = coalesce(enrich_generation, 0) + 1"
                f" WHERE {where}",
                args,
            )

    # -- results --------------------------------------------------------------------------

    def append(self, records: Iterable[Mapping[str, Any]], *, scan_id: str | None = None) -> int:
        """Append a batch of records (dicts per the record contract) in one transaction;
        returns the rows stored (unstorable records are counted in `rejected_records`).

        `scan_id` fills records that carry none.  No duplicate check: the scanner writes each
        target once per scan (use `ingest` for files that may repeat).
        """
        rows: list[Row] = []
        for record in records:
            try:
                rows.append(typed_row(record, scan_id))
            except RecordError:
                self.rejected_records += 1
        if rows:
            with self.transaction():
                self.bulk_insert("results", RESULTS, rows)
                self._count_rows(rows)
        return len(rows)

    def append_lines(self, lines: Iterable[str], *, scan_id: str | None = None) -> LoadStats:
        """Like `append` for records already serialised as JSON lines (no newlines inside)."""
        rows: list[Row] = []
        seen = bad = 0
        for text in lines:
            seen += 1
            try:
                rows.append(typed_row(parse_line(text), scan_id, text))
            except (RecordError, ValueError):
                bad += 1
        self.rejected_records += bad
        if rows:
            with self.transaction():
                self.bulk_insert("results", RESULTS, rows)
                self._count_rows(rows)
        return LoadStats(seen, len(rows), 0, bad, (scan_id,) if scan_id else ())

    def load_lines(
        self,
        lines: Iterable[tuple[int, str]],
        *,
        default_scan_id: str | None,
        name: str,
        keep: int | None = KEEP_REJECTIONS,
        batch: int = 50_000,
    ) -> LoadStats:
        """Load numbered JSON lines in one transaction, skipping rows whose (scan_id, ip,
        port) is already stored or repeated in the input (the first one wins).  Scans named
        by records but unknown here are created with origin 'ingest'."""
        seen = bad = good = 0
        rejections: list[Rejection] = []
        stage = "staged_results"
        with self.transaction():
            self.lock("ingest")
            self.staging_table(stage, RESULTS)

            def typed() -> Iterator[Row]:
                nonlocal seen, bad, good
                for number, text in lines:
                    if not text.strip():
                        continue
                    seen += 1
                    try:
                        row = typed_row(parse_line(text), default_scan_id, text.strip())
                    except RecordError as exc:
                        reason = str(exc)
                    except ValueError:
                        reason = "not JSON (truncated or corrupt line)"
                    else:
                        good += 1
                        yield row
                        continue
                    bad += 1
                    if keep is None or len(rejections) < keep:
                        rejections.append(Rejection(number, reason))

            chunk: list[Row] = []
            for row in typed():
                chunk.append(row)
                if len(chunk) >= batch:
                    self.bulk_insert(stage, RESULTS, chunk)
                    chunk = []
            if chunk:
                self.bulk_insert(stage, RESULTS, chunk)
            scans = tuple(
                str(r[0]) for r in self.query(f"SELECT DISTINCT scan_id FROM {stage} ORDER BY 1")
            )
            columns = ", ".join(RESULT_COLUMNS)
            inserted = self.modify(
                f"INSERT INTO results ({columns}) SELECT {columns} FROM ("
                f" SELECT s.*, row_number() OVER (PARTITION BY s.scan_id, s.ip, s.port"
                f" ORDER BY s.ts) AS n FROM {stage} s"
                " WHERE NOT EXISTS (SELECT 1 FROM results r WHERE r.scan_id = s.scan_id"
                " AND r.ip = s.ip AND r.port = s.port)) t WHERE n = 1"
            )
            self.execute(
                "INSERT INTO scans (scan_id, name, origin, params, tool_version, status,"
                " started_at, finished_at, enrich_generation)"
                f" SELECT scan_id, ?, 'ingest', '{{}}', NULL, 'ingested', min(ts), max(ts), 0"
                f" FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM scans c"
                " WHERE c.scan_id = s.scan_id) GROUP BY scan_id",
                [name],
            )
            self.drop_staging(stage)
            self.refresh_counts(scans)
        return LoadStats(seen, inserted, good - inserted, bad, scans, tuple(rejections))

    def done_targets(self, scan_id: str, batch: int = 100_000) -> Iterator[tuple[str, int]]:
        """(ip, port) already recorded for a scan, streamed in batches (for resume)."""
        for ip, port in self.stream(
            "SELECT DISTINCT ip, port FROM results WHERE scan_id = ?", [scan_id], batch
        ):
            yield str(ip), int(port)

    def result_count(self, scan_id: str | None = None) -> int:
        if scan_id is None:
            return int(self.scalar("SELECT count(*) FROM results") or 0)
        return int(self.scalar("SELECT count(*) FROM results WHERE scan_id = ?", [scan_id]) or 0)

    # -- ingested files -------------------------------------------------------------------

    def ingested_file(self, sha256: str) -> int | None:
        """Lines of a file ingested before (by content), or None."""
        rows = self.query("SELECT lines FROM ingested_files WHERE sha256 = ?", [sha256])
        return int(rows[0][0] or 0) if rows else None

    def record_ingested_file(self, sha256: str, path: str, stats: LoadStats) -> None:
        self.execute(
            "INSERT INTO ingested_files (sha256, path, ingested_at, lines, new_rows, duplicates,"
            " bad_lines) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [sha256, path, now(), stats.lines, stats.new_rows, stats.duplicates, stats.bad_lines],
        )


__all__ = [
    "KEEP_REJECTIONS",
    "SCAN_STATUSES",
    "LoadStats",
    "Rejection",
    "Store",
    "now",
    "params_json",
    "parse_line",
]
