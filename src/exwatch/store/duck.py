"""The embedded backend: one DuckDB file.

DuckDB lets one process hold a file for writing (others may not even read it meanwhile), so
a long scan must not keep it: the scanner's store is *transient* - it opens the file for each
batch and closes it after the commit (milliseconds), and every opener that finds the file
held waits and retries, saying once what it waits for, instead of failing with "in use".
Rows are never inserted one at a time (DuckDB's executemany manages ~700 rows/s): a batch of
typed rows is written as JSON lines to a temporary file and loaded with one INSERT ... SELECT
from `read_json`, inside a transaction, so a crash mid-batch leaves the previous batches
intact (DuckDB's WAL replays on open).
"""

# Statements are assembled from this package's constant table and column names.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from exwatch.errors import StoreError, UsageError
from exwatch.store.base import Row, Store, WaitNote
from exwatch.store.dialect import DUCKDB
from exwatch.store.rows import ip_sort_key
from exwatch.store.schema import (
    SCHEMA_VERSION,
    Column,
    create_all,
    create_later,
    create_table,
)

DEFAULT_WAIT = 60.0  # seconds an opener waits for another process to release the file


def _lock_holder(message: str) -> str:
    match = re.search(r"\(PID (\d+)\)", message)
    return f"process {match.group(1)}" if match else "another process"


def _is_lock(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


def _is_read_only_media(exc: Exception) -> bool:
    text = str(exc).lower()
    return "read-only file system" in text or "permission denied" in text


class DuckStore(Store):
    dialect = DUCKDB

    def __init__(
        self,
        path: str,
        *,
        read_only: bool = False,
        transient: bool = False,
        wait: float = DEFAULT_WAIT,
        on_wait: WaitNote | None = None,
    ) -> None:
        super().__init__()
        self.path = path
        self.location = path
        self.read_only = read_only
        self.transient = transient
        self.wait = wait
        self.on_wait = on_wait
        self._con: duckdb.DuckDBPyConnection | None = None
        self._depth = 0
        self._waited = False

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.wait
        delay = 0.02
        while True:
            try:
                con = duckdb.connect(self.path, read_only=self.read_only)
                break
            except duckdb.IOException as exc:
                if not _is_lock(exc):
                    raise StoreError(f"cannot open store {self.path}: {exc}") from None
                holder = _lock_holder(str(exc))
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"store {self.path} stayed in use by {holder} for {self.wait:.0f} s"
                        " (a DuckDB file has one writer at a time; a scan holds it only while"
                        " it writes a batch, an enrich or ingest for as long as it runs);"
                        " try again when it is done, or use a PostgreSQL store for"
                        " concurrent work"
                    ) from None
                if not self._waited and self.on_wait is not None:
                    self.on_wait(
                        f"store {self.path} is in use by {holder}; waiting up to"
                        f" {self.wait:.0f} s for it"
                    )
                self._waited = True
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open store {self.path}: {exc}") from None
        con.execute("SET TimeZone = 'UTC'")
        return con

    @contextlib.contextmanager
    def _use(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._con is not None:
            yield self._con
            return
        con = self._connect()
        self._con = con
        try:
            yield con
        finally:
            self._con = None
            con.close()

    def hold(self) -> None:
        """Keep the file open until close() (commands that read and write many times)."""
        if self._con is None:
            self._con = self._connect()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    # -- primitives -----------------------------------------------------------------------

    def _run(self, sql: str, params: Sequence[Any]) -> duckdb.DuckDBPyConnection:
        assert self._con is not None
        try:
            return self._con.execute(sql, list(params))
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._use():
            self._run(sql, params)

    def modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._use():
            row = self._run(sql, params).fetchone()
            return int(row[0]) if row else 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._use():
            return self._run(sql, params).fetchall()

    def columns_of(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[Row]]:
        with self._use():
            cur = self._run(sql, params)
            names = [d[0] for d in cur.description or ()]
            return names, cur.fetchall()

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 10_000) -> Iterator[Row]:
        with self._use() as con:
            # A cursor of its own: the caller may write through the main one meanwhile.
            cur = con.cursor()
            try:
                cur.execute(sql, list(params))
                while rows := cur.fetchmany(batch):
                    yield from rows
            except duckdb.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from None
            finally:
                cur.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._use() as con:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            con.execute("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                con.execute("COMMIT")
            except duckdb.Error as exc:
                raise StoreError(f"{self.path}: cannot commit: {exc}") from None

    def staging_table(self, name: str, columns: Sequence[Column]) -> None:
        parts = ", ".join(f"{col} {DUCKDB.type(kind)}" for col, kind in columns)
        self.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({parts})")

    def bulk_insert(self, table: str, columns: Sequence[Column], rows: Iterable[Row]) -> int:
        names = [c for c, _ in columns]
        json_cols = [i for i, (_, kind) in enumerate(columns) if kind == "json"]
        plain = [i for i in range(len(columns)) if i not in json_cols]
        fd, tmp = tempfile.mkstemp(prefix="exwatch-rows-", suffix=".jsonl")
        count = 0
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                plain_names = [names[i] for i in plain]
                for row in rows:
                    head = json.dumps(
                        dict(zip(plain_names, [row[i] for i in plain], strict=True)),
                        separators=(",", ":"),
                        default=_plain,
                    )
                    # JSON columns go in as they are (already JSON text): no second dump.
                    tail = "".join(
                        f',"{names[i]}":{row[i] if row[i] is not None else "null"}'
                        for i in json_cols
                    )
                    handle.write(head[:-1] + tail + "}\n")
                    count += 1
            if not count:
                return 0
            spec = ", ".join(f"'{c}': '{DUCKDB.type(k)}'" for c, k in columns)
            cols = ", ".join(names)
            self.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM read_json(?,"
                f" format = 'newline_delimited', columns = {{{spec}}},"
                " maximum_object_size = 268435456)",
                [tmp],
            )
        finally:
            os.unlink(tmp)
        return count

    # -- schema ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create or migrate the schema (read-write), or check it is readable (read-only)."""
        with self._use():
            found = self._version()
            if self.read_only:
                if found is None:
                    raise StoreError(f"{self.path} is not an exwatch store (no schema)")
                if found < SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema {found} and is read-only; open it once"
                        " writable (any exwatch command) to upgrade it to schema"
                        f" {SCHEMA_VERSION}"
                    )
            elif found is None:
                with self.transaction():
                    for statement in create_all(DUCKDB):
                        self.execute(statement)
                    self.execute(
                        "INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
                    )
            elif found < SCHEMA_VERSION:
                migrate_duckdb(self, found)
            elif found == SCHEMA_VERSION:
                with self.transaction():
                    for statement in create_later(DUCKDB):
                        self.execute(statement)
            if found is not None and found > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer exwatch (schema {found}); upgrade exwatch"
                )

    def _version(self) -> int | None:
        try:
            if not self.has_table("meta"):
                return None
            row = self.query("SELECT value FROM meta WHERE key = 'schema_version'")
        except StoreError as exc:
            raise StoreError(f"{self.path} is not an exwatch store: {exc}") from None
        if not row:
            return None
        try:
            return int(row[0][0])
        except (TypeError, ValueError):
            raise StoreError(f"{self.path}: unreadable schema version {row[0][0]!r}") from None


def _plain(value: Any) -> Any:
    # json.dumps calls this only for what it cannot encode itself (timestamps).
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


# Schema 1 (exwatch 0.1, DuckDB only) -> 2: verdict MAP to arrays, report fields out of the
# record JSON into columns, shard, enrichment options, rollups.
_MIGRATE_RESULTS_1 = """
INSERT INTO results_v2 SELECT
    scan_id, ip, port, hostname, ts, duration_ms, status, error, is_exchange, build, precision,
    product, cu, su, eol, known, sources, vulnerable,
    coalesce(vulnerable_cves, []),
    coalesce(list_sort([e.key FOR e IN map_entries(cves) IF e.value = 'patched']), []),
    coalesce(list_sort([e.key FOR e IN map_entries(cves) IF e.value = 'undetermined']), []),
    coalesce(list_sort(map_keys(cves)), []),
    http_status, server, tls_subject_cn, json_extract_string(record, '$.tls.subject'),
    tls_issuer, tls_not_after, tls_sha256, ntlm_dns_domain, ntlm_dns_computer,
    ntlm_netbios_domain, json_extract_string(record, '$.ntlm.netbios_computer'),
    json_extract_string(record, '$.headers."x-feserver"'), NULL, record
FROM results
"""

_MIGRATE_ENRICHMENT_1 = """
INSERT INTO enrichment_v2 SELECT
    scan_id, ip, port, ts, NULL, country, country_source, asn, as_name, asn_source,
    organisation, sector, matched_by, confidence, ptr, status, is_exchange, vulnerable, eol,
    build, product, cu, coalesce(vulnerable_cves, []),
    coalesce(list_sort([e.key FOR e IN map_entries(cves) IF e.value = 'patched']), []),
    coalesce(list_sort([e.key FOR e IN map_entries(cves) IF e.value = 'undetermined']), []),
    coalesce(list_sort(map_keys(cves)), []), evidence, enriched_at, 'schema-1'
FROM enrichment
"""


def migrate_duckdb(store: DuckStore, found: int) -> None:
    """Bring a DuckDB store from schema `found` to SCHEMA_VERSION, in one transaction."""
    if found != 1:
        raise StoreError(f"{store.path}: no migration from schema {found}")
    with store.transaction():
        store.execute(create_table(DUCKDB, "results").replace("results (", "results_v2 (", 1))
        store.execute(_MIGRATE_RESULTS_1)
        store.execute("DROP TABLE results")
        store.execute("ALTER TABLE results_v2 RENAME TO results")
        for counter in ("enrich_generation", "answered", "enriched"):
            store.execute(f"ALTER TABLE scans ADD COLUMN IF NOT EXISTS {counter} BIGINT DEFAULT 0")
        store.execute(
            "UPDATE scans SET enrich_generation = 0, enriched = 0, answered = (SELECT count(*)"
            " FROM results r WHERE r.scan_id = scans.scan_id AND r.status = 'success')"
        )
        had_enrichment = store.has_table("enrichment")
        if had_enrichment:
            store.execute(
                create_table(DUCKDB, "enrichment").replace("enrichment (", "enrichment_v2 (", 1)
            )
            store.execute(_MIGRATE_ENRICHMENT_1)
            store.execute(
                "UPDATE scans SET enriched = (SELECT count(*) FROM enrichment_v2 e"
                " WHERE e.scan_id = scans.scan_id)"
            )
            store.execute("DROP TABLE enrichment")
            store.execute("ALTER TABLE enrichment_v2 RENAME TO enrichment")
        for statement in create_all(DUCKDB):
            store.execute(statement)
        # Schema 1 scans were single-process: one part each.
        store.execute(
            "INSERT INTO scan_parts (scan_id, part, shard_count, targets, recorded, status,"
            " started_at, finished_at, host, params) SELECT scan_id, '1/1', 1, NULL,"
            " (SELECT count(*) FROM results r WHERE r.scan_id = scans.scan_id),"
            " CASE WHEN origin = 'scan' THEN status ELSE 'ingested' END, started_at,"
            " finished_at, NULL, params FROM scans"
        )
        if had_enrichment:
            ips = [str(r[0]) for r in store.query("SELECT DISTINCT ip FROM enrichment")]
            if ips:
                store.staging_table("ip_keys", [("ip", "text"), ("ip_sort", "text")])
                store.bulk_insert(
                    "ip_keys", [("ip", "text"), ("ip_sort", "text")],
                    ((ip, _sort_or_text(ip)) for ip in ips),
                )  # fmt: skip
                store.execute(
                    "UPDATE enrichment SET ip_sort = k.ip_sort FROM ip_keys k"
                    " WHERE k.ip = enrichment.ip"
                )
                store.drop_staging("ip_keys")
            store.execute(
                "INSERT INTO enrich_profiles VALUES ('schema-1', '{}',"
                ' \'{"note": "enriched by exwatch 0.1; options not recorded"}\', now())'
                " ON CONFLICT DO NOTHING"
            )
        store.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)]
        )


def _sort_or_text(ip: str) -> str:
    try:
        return ip_sort_key(ip)
    except ValueError:
        return "z" + ip


def open_duckdb(
    path: str,
    *,
    read_only: bool,
    transient: bool,
    create: bool,
    wait: float,
    on_wait: WaitNote | None,
) -> DuckStore:
    exists = Path(path).is_file() and Path(path).stat().st_size > 0
    if not exists and not create:
        raise UsageError(f"no store at {path}; run `exwatch scan` or `exwatch ingest` first")
    if not exists and Path(path).is_file():
        Path(path).unlink()  # an empty placeholder file is not a DuckDB database yet
    store = DuckStore(path, read_only=read_only, transient=transient, wait=wait, on_wait=on_wait)
    try:
        store.prepare()
    except StoreError as exc:
        if read_only or create or not _is_read_only_media(exc):
            raise
        # Read-only media (or no write permission): read it as it is.
        store = DuckStore(path, read_only=True, transient=transient, wait=wait, on_wait=on_wait)
        store.prepare()
    if not transient:
        store.hold()
    return store


__all__ = ["DEFAULT_WAIT", "DuckStore", "migrate_duckdb", "open_duckdb"]
