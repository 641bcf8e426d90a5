"""The server backend: a PostgreSQL database (psycopg 3), for censuses with several writers.

Any number of processes may write at once: bulk loads use COPY (never row by row), each in
its own transaction; the steps that must not interleave (creating the schema, joining a
census, ingest's duplicate check, building a rollup) take a transaction-scoped advisory lock
named for what they protect.  The connection runs in autocommit; `transaction()` opens a
transaction (a savepoint when nested).
"""

# Statements are assembled from this package's constant table and column names.

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads

from exwatch.errors import StoreError
from exwatch.store.base import Row, Store
from exwatch.store.dialect import POSTGRES
from exwatch.store.location import Location
from exwatch.store.schema import SCHEMA_VERSION, Column, create_all, create_later

_CONNECT_TIMEOUT = 10


def _raw_json(text: str | bytes) -> str:
    # JSON columns come back as text, as DuckDB returns them: one decoding path for callers.
    return text.decode("utf-8") if isinstance(text, bytes) else text


class PgStore(Store):
    dialect = POSTGRES

    def __init__(self, location: Location, *, read_only: bool = False) -> None:
        super().__init__()
        self.location = location.display
        self.read_only = read_only
        self._cursors = 0
        try:
            self._con = psycopg.connect(
                location.target, autocommit=True, connect_timeout=_CONNECT_TIMEOUT
            )
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot connect to {self.location}: {message}") from None
        set_json_loads(_raw_json, self._con)
        self._con.execute("SET TIME ZONE 'UTC'")
        if read_only:
            self._con.execute("SET default_transaction_read_only = on")

    def _fail(self, exc: psycopg.Error) -> StoreError:
        text = str(exc).strip().splitlines()
        return StoreError(f"{self.location}: {text[0] if text else type(exc).__name__}")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self._con.execute(POSTGRES.sql(sql), list(params))
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            cur = self._con.execute(POSTGRES.sql(sql), list(params))
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        return max(cur.rowcount, 0)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._con.execute(POSTGRES.sql(sql), list(params)).fetchall()
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def columns_of(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[Row]]:
        try:
            cur = self._con.execute(POSTGRES.sql(sql), list(params))
            names = [d.name for d in cur.description or ()]
            return names, cur.fetchall()
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 10_000) -> Iterator[Row]:
        # A server-side cursor: millions of rows are never held in memory at once.
        self._cursors += 1
        name = f"exwatch_stream_{self._cursors}"
        try:
            with self._con.transaction(), self._con.cursor(name=name) as cur:
                cur.itersize = batch
                cur.execute(POSTGRES.sql(sql), list(params))
                while rows := cur.fetchmany(batch):
                    yield from rows
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self._con.transaction():
                yield
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def lock(self, name: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", [f"exwatch:{name}"])

    def tune_for_aggregation(self) -> None:
        # The default 4 MB makes a 10-million-row GROUPING SETS spill to disk (2x slower).
        self.execute("SET LOCAL work_mem = '256MB'")

    def staging_table(self, name: str, columns: Sequence[Column]) -> None:
        parts = ", ".join(f"{col} {POSTGRES.type(kind)}" for col, kind in columns)
        self.execute(f"DROP TABLE IF EXISTS {name}")
        self.execute(f"CREATE TEMP TABLE {name} ({parts}) ON COMMIT DROP")

    def bulk_insert(self, table: str, columns: Sequence[Column], rows: Iterable[Row]) -> int:
        cols = ", ".join(c for c, _ in columns)
        count = 0
        try:
            with (
                self._con.cursor() as cur,
                cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
                    count += 1
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        return count

    def close(self) -> None:
        self._con.close()

    # -- schema ---------------------------------------------------------------------------

    def prepare(self) -> None:
        with self.transaction():
            # Two processes starting on a fresh database must not both create the tables.
            if not self.read_only:
                self.lock("schema")
            found = self._version()
            if found is None:
                if self.read_only:
                    raise StoreError(f"{self.location} holds no exwatch store")
                for statement in create_all(POSTGRES):
                    self.execute(statement)
                self.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                    [str(SCHEMA_VERSION)],
                )
            elif found > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.location} was written by a newer exwatch (schema {found});"
                    " upgrade exwatch"
                )
            elif found < SCHEMA_VERSION:
                migrate_postgres(self, found)
            elif not self.read_only:
                for statement in create_later(POSTGRES):
                    self.execute(statement)

    def _version(self) -> int | None:
        if not self.has_table("meta"):
            return None
        row = self.query("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row[0][0]) if row else None


def migrate_postgres(store: PgStore, found: int) -> None:
    """PostgreSQL stores start at schema 2; later versions add their steps here."""
    raise StoreError(f"{store.location}: no migration from schema {found}")


def open_postgres(location: Location, *, read_only: bool) -> PgStore:
    store = PgStore(location, read_only=read_only)
    try:
        store.prepare()
    except BaseException:
        store.close()
        raise
    return store


__all__ = ["PgStore", "open_postgres"]
