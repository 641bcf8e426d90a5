"""The small seam between the two SQL dialects the store speaks.

Report, enrichment and export SQL is written once, in the subset DuckDB and PostgreSQL share
(FILTER clauses, CTEs, window functions, GROUPING SETS, unnest of arrays, `?` placeholders);
the few spellings that differ are methods here.  Why not SQLAlchemy Core: the bulk paths
(DuckDB file scans, PostgreSQL COPY) are backend-specific anyway, duckdb-engine trails DuckDB
releases, and the constructs reports need (FILTER, arrays, GROUPING SETS) would be raw text
inside SQLAlchemy too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Portable column types -> each backend's spelling.
_DUCKDB_TYPES = {
    "text": "VARCHAR",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "ts": "TIMESTAMPTZ",
    "text[]": "VARCHAR[]",
    "json": "JSON",
}
_POSTGRES_TYPES = {
    "text": "TEXT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "ts": "TIMESTAMPTZ",
    "text[]": "TEXT[]",
    "json": "JSON",
}


class Dialect:
    name = "generic"
    types: dict[str, str] = _DUCKDB_TYPES

    def type(self, portable: str) -> str:
        return self.types[portable]

    def iso(self, expr: str, *, micro: bool = False) -> str:
        """A TIMESTAMPTZ expression as ISO 8601 UTC text (`...Z`)."""
        raise NotImplementedError

    def stamp(self, expr: str) -> str:
        """A TIMESTAMPTZ expression as `YYYY-MM-DD HH:MM:SS` UTC (Shadowserver's format)."""
        raise NotImplementedError

    def array_len(self, expr: str) -> str:
        raise NotImplementedError

    def days_between(self, start: str, end: str) -> str:
        """Whole calendar days (UTC) from start to end."""
        raise NotImplementedError

    def array_has(self, array: str, value: str) -> str:
        raise NotImplementedError

    def array_contains(self, array: str, param: str = "?") -> str:
        """`array` holds the bound text value `param` (index-friendly where one exists)."""
        raise NotImplementedError

    def array_overlaps(self, array: str, param: str = "?") -> str:
        """`array` shares an element with the bound list of text values `param`."""
        raise NotImplementedError

    def sql(self, text: str) -> str:
        """The statement as the driver wants it (placeholders)."""
        return text

    @staticmethod
    def in_list(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`column IN (?, ...)` with one placeholder per value (FALSE for none)."""
        items = list(values)
        if not items:
            return "FALSE", []
        return f"{column} IN ({', '.join('?' for _ in items)})", items


class DuckDialect(Dialect):
    name = "duckdb"
    types = _DUCKDB_TYPES

    def iso(self, expr: str, *, micro: bool = False) -> str:
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
        return f"strftime({expr}, '{fmt}')"

    def stamp(self, expr: str) -> str:
        return f"strftime({expr}, '%Y-%m-%d %H:%M:%S')"

    def array_len(self, expr: str) -> str:
        return f"len({expr})"

    def days_between(self, start: str, end: str) -> str:
        return f"date_diff('day', CAST({start} AS DATE), CAST({end} AS DATE))"

    def array_has(self, array: str, value: str) -> str:
        return f"list_contains({array}, {value})"

    def array_contains(self, array: str, param: str = "?") -> str:
        return f"list_contains({array}, CAST({param} AS VARCHAR))"

    def array_overlaps(self, array: str, param: str = "?") -> str:
        return f"list_has_any({array}, CAST({param} AS VARCHAR[]))"


class PostgresDialect(Dialect):
    name = "postgresql"
    types = _POSTGRES_TYPES

    def iso(self, expr: str, *, micro: bool = False) -> str:
        fmt = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' if micro else 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
        return f"to_char({expr} AT TIME ZONE 'UTC', '{fmt}')"

    def stamp(self, expr: str) -> str:
        return f"to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"

    def array_len(self, expr: str) -> str:
        return f"cardinality({expr})"

    def days_between(self, start: str, end: str) -> str:
        return (
            f"(CAST({end} AT TIME ZONE 'UTC' AS DATE) - CAST({start} AT TIME ZONE 'UTC' AS DATE))"
        )

    def array_has(self, array: str, value: str) -> str:
        return f"{value} = ANY({array})"

    def array_contains(self, array: str, param: str = "?") -> str:
        # @> can use a GIN index on the array; `= ANY` cannot.
        return f"{array} @> ARRAY[CAST({param} AS TEXT)]"

    def array_overlaps(self, array: str, param: str = "?") -> str:
        return f"{array} && CAST({param} AS TEXT[])"

    def sql(self, text: str) -> str:
        # psycopg's placeholders are %s, so a literal % must be doubled.  The statements are
        # exwatch's own and never hold a `?` inside a string literal.
        return text.replace("%", "%%").replace("?", "%s")


DUCKDB = DuckDialect()
POSTGRES = PostgresDialect()

__all__ = ["DUCKDB", "POSTGRES", "Dialect", "DuckDialect", "PostgresDialect"]
