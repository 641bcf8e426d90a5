"""Both store backends for the tests: a DuckDB file, or a schema of its own in PostgreSQL.

The PostgreSQL server is the real one on 127.0.0.1:5432 (`EXWATCH_TEST_PG` overrides the
URL of its maintenance database).  Each test session creates its own database
`exwatch_test_<random>` and drops it at the end (other sessions use the server too); each
store in it is a fresh schema, named by the URL's search_path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

BACKENDS = ("duckdb", "postgresql")
ADMIN_URL = os.environ.get("EXWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a database created for this test session (dropped afterwards)."""
    name = f"exwatch_test_{uuid.uuid4().hex[:12]}"
    try:
        with _admin() as con:
            con.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server at {ADMIN_URL}: {exc}")
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _admin() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_store_url(database: str) -> str:
    """A fresh, empty schema in the session database, as a store URL."""
    schema = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    return f"{database}?options={quote(f'-csearch_path={schema}')}"


def new_target(backend: str, folder: Path, request: pytest.FixtureRequest, name: str = "s") -> str:
    """A `--db` value for a new, empty store of this backend."""
    if backend == "duckdb":
        return str(folder / f"{name}.duckdb")
    database: str = request.getfixturevalue("pg_database")
    return pg_store_url(database)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A `--db` value of a new empty store, once per backend."""
    return new_target(backend, tmp_path, request)
