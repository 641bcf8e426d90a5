"""Where a store lives: a DuckDB file (the default) or a PostgreSQL database, from `--db`.

`--db PATH` or `duckdb:///PATH` is an embedded DuckDB file; `postgresql://...` or
`postgres://...` a PostgreSQL database.  A path that holds something else (JSON lines, CSV,
Parquet...) is refused before DuckDB can open it: DuckDB would happily treat a JSON file as
a view and keep nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from exwatch.errors import UsageError

Backend = Literal["duckdb", "postgresql"]

# DuckDB's file header: 8 bytes of checksum, then the magic "DUCK".
_DUCKDB_MAGIC = b"DUCK"
# Names that are data for `ingest` or `export`, never a store.
_DATA_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".parquet", ".gz", ".txt", ".html", ".xz")


@dataclass(frozen=True, slots=True)
class Location:
    backend: Backend
    target: str  # the file path, or the PostgreSQL connection URL

    @property
    def display(self) -> str:
        """For messages: the path, or the URL without its password."""
        if self.backend == "duckdb":
            return self.target
        return _without_password(self.target)


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, host = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"


def parse_location(text: str | os.PathLike[str]) -> Location:
    """The backend and target named by a `--db` value; UsageError for what is not a store."""
    value = os.fspath(text)
    if value.startswith(("postgresql://", "postgres://")):
        return Location("postgresql", value)
    if value.startswith("duckdb://"):
        value = value[len("duckdb://") :]
        if value.startswith("/") and value.startswith("//"):
            value = value[1:]  # duckdb:///abs/path -> /abs/path
        elif value.startswith("/"):
            value = value[1:]  # duckdb:///rel -> rel, as SQLAlchemy spells relative paths
        if not value:
            raise UsageError("duckdb:/// needs a file path, e.g. duckdb:///census.duckdb")
    elif "://" in value:
        scheme = value.split("://", 1)[0]
        raise UsageError(
            f"--db {value!r}: unknown store scheme {scheme!r}; give a file path,"
            " duckdb:///PATH or postgresql://user@host/database"
        )
    check_store_path(Path(value))
    return Location("duckdb", value)


def check_store_path(path: Path) -> None:
    """Refuse a path that is (or would be) a data file rather than a DuckDB store."""
    if path.is_dir():
        raise UsageError(f"--db {path}: is a directory; give a store file such as census.duckdb")
    if path.is_file():
        try:
            with path.open("rb") as handle:
                head = handle.read(16)
        except OSError as exc:
            raise UsageError(f"--db {path}: cannot read it ({exc.strerror})") from None
        if not head:
            return  # an empty file (e.g. from mktemp) becomes a store
        if head[8:12] != _DUCKDB_MAGIC:
            hint = ""
            if head.lstrip()[:1] in (b"{", b"["):
                hint = f"; it holds JSON: load it with `exwatch ingest {path}`"
            raise UsageError(f"--db {path} is not an exwatch store{hint}")
        return
    if path.suffix.lower() in _DATA_SUFFIXES:
        raise UsageError(
            f"--db {path}: a store is a .duckdb file (or postgresql://...), not {path.suffix};"
            " JSON lines are loaded with `exwatch ingest`"
        )


__all__ = ["Backend", "Location", "check_store_path", "parse_location"]
