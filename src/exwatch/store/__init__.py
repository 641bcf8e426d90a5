"""The result store: scans, typed results, enrichment and rollups, in DuckDB or PostgreSQL.

    store = open_store("census.duckdb")            # or "postgresql://user@host/db"

Everything outside this package uses the `Store` interface and portable SQL through
`store.query(...)`; which backend answers is this package's business only.
"""

from __future__ import annotations

import os

from exwatch.store.base import LoadStats, Rejection, Store, WaitNote
from exwatch.store.duck import DEFAULT_WAIT
from exwatch.store.ingest import IngestSummary, ingest_files
from exwatch.store.location import Location, parse_location

DEFAULT_PATH = "exwatch.duckdb"


def open_store(
    target: str | os.PathLike[str] = DEFAULT_PATH,
    *,
    read_only: bool = False,
    create: bool = True,
    transient: bool = False,
    wait: float = DEFAULT_WAIT,
    on_wait: WaitNote | None = None,
) -> Store:
    """Open (creating or migrating if needed) the store named by a `--db` value.

    read_only: never write (a DuckDB file on read-only media opens this way by itself when
    `create` is false).  create: false for commands that only read (a missing DuckDB file is
    a usage error, not a new empty store).  transient: for a long scan, DuckDB is opened per
    operation so that others can read between batches.  wait/on_wait: how long to wait for a
    DuckDB file another process holds, and whom to tell that we wait.
    """
    location = parse_location(target)
    if location.backend == "postgresql":
        from exwatch.store.postgres import open_postgres

        return open_postgres(location, read_only=read_only)
    from exwatch.store.duck import open_duckdb

    return open_duckdb(
        location.target,
        read_only=read_only,
        transient=transient,
        create=create,
        wait=wait,
        on_wait=on_wait,
    )


__all__ = [
    "DEFAULT_PATH",
    "IngestSummary",
    "LoadStats",
    "Location",
    "Rejection",
    "Store",
    "ingest_files",
    "open_store",
    "parse_location",
]
