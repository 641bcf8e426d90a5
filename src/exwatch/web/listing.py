"""Tables over the full result set: sort, filter and paginate in SQL, never in the browser.

A page asks for one `Listing` (its rows, the total matching, the page, the sort); the same
object becomes the HTML table, the JSON answer and the CSV download, so a download holds
exactly the rows shown.
"""

# SQL here is assembled from the column expressions a page declares (never from request
# text); request values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from exwatch.errors import UsageError
from exwatch.report.exports import neutralise
from exwatch.store import Store
from exwatch.web.memo import memo

Kind = Literal["text", "int", "pct", "float", "bool", "list", "date"]
PER_PAGE = 50
MAX_PER_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    kind: Kind = "text"
    sort: str | None = None  # SQL expression to order by (None: not sortable)
    raw: bool = False  # a string a scanned server chose (shown in monospace, escaped)
    hidden: bool = False  # in JSON and CSV only


@dataclass(frozen=True, slots=True)
class Paging:
    sort: str | None = None
    descending: bool = True
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_query(cls, query: Mapping[str, str], default_sort: str | None) -> Paging:
        sort = query.get("sort") or default_sort
        direction = query.get("dir", "desc" if sort == default_sort else "asc")
        if direction not in ("asc", "desc"):
            raise UsageError("dir is asc or desc")
        page = _int(query.get("page"), 1, "page")
        per_page = _int(query.get("per_page"), PER_PAGE, "per_page")
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise UsageError(f"page starts at 1; per_page is 1 to {MAX_PER_PAGE}")
        return cls(sort, direction == "desc", page, per_page)


def _int(text: str | None, default: int, name: str) -> int:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name} must be a whole number") from None


@dataclass
class Listing:
    columns: list[Column]
    rows: list[dict[str, Any]]
    total: int
    paging: Paging
    filters: dict[str, str] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.paging.per_page))

    @property
    def first(self) -> int:
        return 0 if not self.rows else (self.paging.page - 1) * self.paging.per_page + 1

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0

    @property
    def shown(self) -> list[Column]:
        return [c for c in self.columns if not c.hidden]

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "page": self.paging.page,
            "per_page": self.paging.per_page,
            "pages": self.pages,
            "sort": self.paging.sort,
            "dir": "desc" if self.paging.descending else "asc",
            "filters": self.filters,
            "columns": [c.key for c in self.columns],
            "rows": self.rows,
        }

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.key for c in self.columns])
        for row in self.rows:
            writer.writerow([neutralise(_cell(row.get(c.key))) for c in self.columns])
        return buffer.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


@dataclass(frozen=True, slots=True)
class Joined:
    """A page's source as one table plus joins that neither drop nor repeat its rows (LEFT
    JOINs on a unique key): a page sorted by the table's own columns is cut from the table
    alone and only its rows are joined, instead of joining every matching row first."""

    table: str  # "enrichment e"
    alias: str  # "e"
    joins: str  # "LEFT JOIN (VALUES ...) lag ON lag.build = e.build"
    params: Sequence[Any] = ()

    @property
    def source(self) -> str:
        return f"{self.table} {self.joins}"


def fetch(
    store: Store,
    *,
    columns: Sequence[Column],
    select: str,
    source: str,
    where: Sequence[str],
    params: Sequence[Any],
    paging: Paging,
    tiebreak: str,
    filters: Mapping[str, str] | None = None,
    source_params: Sequence[Any] = (),
    select_params: Sequence[Any] = (),
    total: int | None = None,
    joined: Joined | None = None,
    count_key: tuple[Any, ...] | None = None,
) -> Listing:
    """One page of `SELECT select FROM source WHERE where...` in the requested order.

    `joined` spells `source` as a table and its joins (see `Joined`); `count_key`, when the
    rows cannot change without it changing (a scan's enrichment stamp), keeps the total of
    each filter in memory, so paging through millions of matches counts them once."""
    sortable = {c.key: c.sort for c in columns if c.sort}
    if paging.sort is not None and paging.sort not in sortable:
        raise UsageError(f"cannot sort by {paging.sort!r}; one of {', '.join(sortable)}")
    clause = " AND ".join(where) if where else "TRUE"
    order = tiebreak
    if paging.sort is not None:
        direction = "DESC" if paging.descending else "ASC"
        nulls = "NULLS LAST"
        order = f"{sortable[paging.sort]} {direction} {nulls}, {tiebreak}"
    window = f" LIMIT {int(paging.per_page)} OFFSET {int((paging.page - 1) * paging.per_page)}"
    sort_sql = sortable[paging.sort] if paging.sort is not None else tiebreak
    if joined is not None and _own(sort_sql, joined.alias) and _only(clause, joined.alias):
        a = joined.alias
        page = f"SELECT * FROM {joined.table} WHERE {clause} ORDER BY {order}{window}"
        if store.dialect.name == "duckdb":
            # A deep page sorts only the row ids past the offset, not whole rows.
            page = (
                f"SELECT * FROM {joined.table} WHERE {a}.rowid IN (SELECT {a}.rowid"
                f" FROM {joined.table} WHERE {clause} ORDER BY {order}{window})"
            )
        names, rows = store.columns_of(
            f"SELECT {select} FROM ({page}) {a} {joined.joins} ORDER BY {order}",
            [*select_params, *params, *joined.params],
        )
    else:
        names, rows = store.columns_of(
            f"SELECT {select} FROM {source} WHERE {clause} ORDER BY {order}{window}",
            [*select_params, *source_params, *params],
        )
    if total is None:
        if paging.page == 1 and len(rows) < paging.per_page:
            total = len(rows)
        else:
            if joined is not None:
                sql, args = f"SELECT count(*) FROM {joined.table} WHERE {clause}", [*params]
            else:
                sql = f"SELECT count(*) FROM {source} WHERE {clause}"
                args = [*source_params, *params]
            if count_key is None:
                total = int(store.scalar(sql, args) or 0)
            else:
                total = memo(
                    (*count_key, sql, tuple(_hashable(a) for a in args)),
                    lambda: int(store.scalar(sql, args) or 0),
                )
    out = [dict(zip(names, row, strict=True)) for row in rows]
    return Listing(list(columns), out, total, paging, dict(filters or {}))


def _own(sort_sql: str, alias: str) -> bool:
    """Whether an ORDER BY expression reads only plain columns of `alias`."""
    return all(
        re.fullmatch(rf"{re.escape(alias)}\.\w+", part.strip()) for part in sort_sql.split(",")
    )


def _only(clause: str, alias: str) -> bool:
    """Whether a WHERE clause names columns of `alias` only (a filter on a joined table
    cannot be applied to the table alone)."""
    return all(q == alias for q in re.findall(r"\b([A-Za-z_]\w*)\.[A-Za-z_]", clause))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def like(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


__all__ = ["MAX_PER_PAGE", "PER_PAGE", "Column", "Joined", "Listing", "Paging", "fetch", "like"]
