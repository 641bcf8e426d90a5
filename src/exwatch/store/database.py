"""The embedded result store: one DuckDB file, scans + results, bulk appends only.

DuckDB allows one read-write process per file, so a scan (or an ingest) owns the file while
it runs; a second process gets a StoreError naming the holder.  Rows are never inserted one
at a time (DuckDB's executemany manages ~700 rows/s): a batch is written as JSON lines to a
temporary file and loaded with `read_json` plus one INSERT ... SELECT, inside a transaction,
so a crash mid-batch leaves the previous batches intact (DuckDB's WAL replays on open).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from exwatch import __version__
from exwatch.errors import StoreError
from exwatch.store.schema import (
    CREATE_TYPED,
    DDL,
    EXPORT_ALL,
    EXPORT_SCAN,
    INSERT_DIRECT,
    INSERT_NEW_FROM_TYPED,
    SCHEMA_VERSION,
)

DEFAULT_PATH = "exwatch.duckdb"
SCAN_STATUSES = ("running", "finished", "interrupted", "ingested")


@dataclass(frozen=True, slots=True)
class LoadStats:
    """Outcome of loading one batch or file: lines seen, rows added, and what was skipped."""

    lines: int  # non-blank lines
    new_rows: int
    duplicates: int
    bad_lines: int  # not JSON, not an object, or missing ip/port/timestamp
    scan_ids: tuple[str, ...] = ()  # scans the batch touched


def _now() -> datetime:
    return datetime.now(UTC)


def _lock_holder(message: str) -> str:
    match = re.search(r"\(PID (\d+)\)", message)
    return f" (held by process {match.group(1)})" if match else ""


class Store:
    """A DuckDB result store.  Use `Store.open(path)`; close it (or use `with`)."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: str) -> None:
        self._con = connection
        self.path = path
        # Records `append` could not store (no ip/port/timestamp: a scanner bug); they are
        # still in the JSON lines output, and finish_scan records the number.
        self.rejected_records = 0

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path = DEFAULT_PATH, *, read_only: bool = False) -> Store:
        """Open (creating if needed) a store; StoreError if locked by another process."""
        name = str(path)
        try:
            con = duckdb.connect(name, read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise StoreError(
                    f"store {name} is in use by another exwatch process{_lock_holder(text)};"
                    " wait for it to finish or use another --db"
                ) from None
            raise StoreError(f"cannot open store {name}: {text}") from None
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {name}: {exc}") from None
        con.execute("SET TimeZone = 'UTC'")
        store = cls(con, name)
        if not read_only:
            store._create_schema()
        return store

    def _create_schema(self) -> None:
        try:
            self._con.execute(DDL)
            found = self._con.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
        except duckdb.Error as exc:
            raise StoreError(f"{self.path} is not an exwatch store: {exc}") from None
        if found is None:
            self._con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
        elif int(found[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer exwatch (schema {found[0]}); upgrade exwatch"
            )

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection, for reporting queries (read the schema in store/schema.py)."""
        return self._con

    # -- scans --------------------------------------------------------------------------

    def start_scan(
        self,
        params: Mapping[str, Any],
        *,
        scan_id: str | None = None,
        name: str | None = None,
        tool_version: str = __version__,
    ) -> str:
        """Record a new running scan with its parameters; returns its id."""
        scan_id = scan_id or f"{_now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        try:
            self._con.execute(
                "INSERT INTO scans (scan_id, name, origin, params, tool_version, status,"
                " started_at) VALUES (?, ?, 'scan', ?, ?, 'running', ?)",
                [scan_id, name, _params_json(params), tool_version, _now()],
            )
        except duckdb.ConstraintException:
            raise StoreError(f"scan {scan_id} already exists in {self.path}") from None
        return scan_id

    def finish_scan(self, scan_id: str, status: str = "finished") -> None:
        """Mark a scan finished or interrupted, with its per-status row counts."""
        if status not in SCAN_STATUSES:
            raise StoreError(f"unknown scan status {status!r}; one of {', '.join(SCAN_STATUSES)}")
        counts: dict[str, int] = self.status_counts(scan_id)
        if self.rejected_records:
            counts["rejected-records"] = self.rejected_records
        self._con.execute(
            "UPDATE scans SET status = ?, finished_at = ?, counts = ? WHERE scan_id = ?",
            [status, _now(), json.dumps(counts), scan_id],
        )

    def find_resumable(self, params: Mapping[str, Any]) -> str | None:
        """Latest scan run here with exactly these parameters that did not finish
        (interrupted, or still 'running' after a crash), or None."""
        wanted = _params_json(params)
        rows = self._con.execute(
            "SELECT scan_id, params FROM scans WHERE origin = 'scan'"
            " AND status IN ('interrupted', 'running') ORDER BY started_at DESC"
        ).fetchall()
        for scan_id, stored in rows:
            if stored is not None and _params_json(json.loads(stored)) == wanted:
                return str(scan_id)
        return None

    def resume_scan(self, scan_id: str) -> None:
        """Mark an interrupted scan running again (same id, its done targets are kept)."""
        self._con.execute(
            "UPDATE scans SET status = 'running', finished_at = NULL WHERE scan_id = ?", [scan_id]
        )

    def latest_scan_id(self, *, origin: str | None = "scan") -> str | None:
        sql = "SELECT scan_id FROM scans"
        args: list[Any] = []
        if origin is not None:
            sql += " WHERE origin = ?"
            args.append(origin)
        row = self._con.execute(
            sql + " ORDER BY started_at DESC NULLS LAST LIMIT 1", args
        ).fetchone()
        return None if row is None else str(row[0])

    def scan_params(self, scan_id: str) -> dict[str, Any]:
        row = self._con.execute("SELECT params FROM scans WHERE scan_id = ?", [scan_id]).fetchone()
        if row is None:
            raise StoreError(f"no scan {scan_id} in {self.path}")
        params = json.loads(row[0]) if row[0] else {}
        return params if isinstance(params, dict) else {}

    def scan_info(self, scan_id: str) -> dict[str, Any]:
        # Timestamps as ISO text: fetching TIMESTAMPTZ would make DuckDB import pytz.
        cur = self._con.execute(
            "SELECT scan_id, name, origin, params, tool_version, status,"
            " strftime(started_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS started_at,"
            " strftime(finished_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS finished_at, counts"
            " FROM scans WHERE scan_id = ?",
            [scan_id],
        )
        row = cur.fetchone()
        if row is None:
            raise StoreError(f"no scan {scan_id} in {self.path}")
        names = [d[0] for d in cur.description or ()]
        return dict(zip(names, row, strict=True))

    def status_counts(self, scan_id: str) -> dict[str, int]:
        rows = self._con.execute(
            "SELECT status, count(*) FROM results WHERE scan_id = ? GROUP BY status ORDER BY 1",
            [scan_id],
        ).fetchall()
        return {str(s): int(n) for s, n in rows}

    # -- results ------------------------------------------------------------------------

    def append(self, records: Iterable[Mapping[str, Any]], *, scan_id: str | None = None) -> int:
        """Append a batch of records (dicts per the record contract) in one transaction;
        returns the rows stored (unstorable records are counted in `rejected_records`).

        `scan_id` fills records that carry none.  No duplicate check: the scanner writes each
        target once per scan (use `ingest` for files that may repeat).
        """
        stats = self.append_lines(
            (json.dumps(r, separators=(",", ":"), default=str) for r in records),
            scan_id=scan_id,
        )
        return stats.new_rows

    def append_lines(self, lines: Iterable[str], *, scan_id: str | None = None) -> LoadStats:
        """Like `append` for records already serialised as JSON lines (no newlines inside)."""
        fd, tmp = tempfile.mkstemp(prefix="exwatch-batch-", suffix=".jsonl")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                for line in lines:
                    handle.write(line)
                    handle.write("\n")
            stats = self.load_jsonl(tmp, default_scan_id=scan_id, dedup=False)
            self.rejected_records += stats.bad_lines
            return stats
        finally:
            os.unlink(tmp)

    def load_jsonl(
        self, path: str | Path, *, default_scan_id: str | None, dedup: bool, name: str | None = None
    ) -> LoadStats:
        """Bulk-load one JSONL file in one transaction; bad lines are counted, never fatal.

        With `dedup`, rows whose (scan_id, ip, port, ts) is already stored (or repeated in
        the file) are skipped, and scans named by records but unknown here are created
        with origin 'ingest'.
        """
        con = self._con
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(
                "CREATE OR REPLACE TEMP TABLE staged AS SELECT json AS j FROM read_json(?,"
                " format = 'newline_delimited', records = false, ignore_errors = true,"
                " columns = {'json': 'JSON'}, maximum_object_size = 67108864)",
                [str(path)],
            )
            lines = _scalar(con, "SELECT count(*) FROM staged")
            if dedup:
                con.execute(CREATE_TYPED, [default_scan_id])
                good = _scalar(con, "SELECT count(*) FROM typed")
                scans = tuple(
                    str(r[0]) for r in con.execute("SELECT DISTINCT scan_id FROM typed").fetchall()
                )
                inserted = _inserted(con.execute(INSERT_NEW_FROM_TYPED))
                self._register_ingested_scans(name or str(path))
                con.execute("DROP TABLE typed")
            else:
                inserted = good = _inserted(con.execute(INSERT_DIRECT, [default_scan_id]))
                scans = (default_scan_id,) if default_scan_id else ()
            con.execute("DROP TABLE staged")
            con.execute("COMMIT")
        except duckdb.Error as exc:
            _rollback(con)
            raise StoreError(f"cannot load {path} into {self.path}: {exc}") from None
        return LoadStats(lines, inserted, good - inserted, lines - good, scans)

    def _register_ingested_scans(self, name: str) -> None:
        self._con.execute(
            "INSERT INTO scans (scan_id, name, origin, params, tool_version, status,"
            " started_at, finished_at)"
            " SELECT scan_id, ?, 'ingest', '{}', NULL, 'ingested', min(ts), max(ts) FROM typed"
            " WHERE scan_id NOT IN (SELECT scan_id FROM scans) GROUP BY scan_id",
            [name],
        )

    def refresh_counts(self, scan_ids: Iterable[str]) -> None:
        for scan_id in scan_ids:
            self._con.execute(
                "UPDATE scans SET counts = ? WHERE scan_id = ?",
                [json.dumps(self.status_counts(scan_id)), scan_id],
            )

    def done_targets(self, scan_id: str, batch: int = 100_000) -> Iterator[tuple[str, int]]:
        """(ip, port) already recorded for a scan, streamed in batches (for resume)."""
        cur = self._con.cursor()
        cur.execute("SELECT DISTINCT ip, port FROM results WHERE scan_id = ?", [scan_id])
        while rows := cur.fetchmany(batch):
            for ip, port in rows:
                yield str(ip), int(port)
        cur.close()

    def result_count(self, scan_id: str | None = None) -> int:
        if scan_id is None:
            return _scalar(self._con, "SELECT count(*) FROM results")
        return _scalar(self._con, "SELECT count(*) FROM results WHERE scan_id = ?", [scan_id])

    def export_parquet(self, path: str | Path, scan_id: str | None = None) -> None:
        """Write results (optionally of one scan) to a zstd Parquet file."""
        if scan_id is None:
            self._con.execute(EXPORT_ALL, {"path": str(path)})
        else:
            self._con.execute(EXPORT_SCAN, {"path": str(path), "scan": scan_id})


def _params_json(params: Mapping[str, Any]) -> str:
    # Canonical form, so that resume can compare parameters as text.
    return json.dumps(dict(params), sort_keys=True, default=str)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, args: list[Any] | None = None) -> int:
    row = con.execute(sql, args or []).fetchone()
    return int(row[0]) if row else 0


def _inserted(cur: duckdb.DuckDBPyConnection) -> int:
    # DuckDB answers an INSERT with one row holding the number of rows inserted.
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # nothing was open
        con.execute("ROLLBACK")


__all__ = ["DEFAULT_PATH", "SCAN_STATUSES", "LoadStats", "Store"]
