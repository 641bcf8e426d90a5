"""Scans: the list, one census's progress (every shard), and the diff of any two scans."""

# SQL here is assembled from fixed column names of this module; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from exwatch.errors import UsageError
from exwatch.report import trends
from exwatch.report.aggregate import resolve_scan
from exwatch.store import Store
from exwatch.web import groups
from exwatch.web.listing import Column, Listing, Paging, fetch

SCAN_COLUMNS = [
    Column("scan_id", "Scan", "text", "s.scan_id"),
    Column("name", "Name", "text", "s.name"),
    Column("origin", "Origin", "text", "s.origin"),
    Column("status", "Status", "text", "s.status"),
    Column("started_at", "Started", "date", "s.started_at"),
    Column("finished_at", "Finished", "date", "s.finished_at"),
    Column("shards", "Shards", "int", "shards"),
    Column("recorded", "Targets recorded", "int", "recorded"),
    Column("answered", "Answering", "int", "s.answered"),
    Column("enriched", "Enriched", "int", "s.enriched"),
]


def scan_listing(store: Store, query: Mapping[str, str]) -> Listing:
    d = store.dialect
    paging = Paging.from_query(query, "started_at")
    where: list[str] = []
    params: list[Any] = []
    status = query.get("status")
    if status:
        where.append("s.status = ?")
        params.append(status)
    return fetch(
        store,
        columns=SCAN_COLUMNS,
        select=(
            f"s.scan_id, s.name, s.origin, s.status, {d.iso('s.started_at')} AS started_at,"
            f" {d.iso('s.finished_at')} AS finished_at,"
            " (SELECT count(*) FROM scan_parts p WHERE p.scan_id = s.scan_id) AS shards,"
            " (SELECT CAST(coalesce(sum(p.recorded), 0) AS BIGINT) FROM scan_parts p"
            " WHERE p.scan_id = s.scan_id) AS recorded,"
            " coalesce(s.answered, 0) AS answered, coalesce(s.enriched, 0) AS enriched"
        ),
        source="scans s",
        where=where,
        params=params,
        paging=paging,
        tiebreak="s.scan_id",
        filters={"status": status} if status else {},
    )


def scan_progress(store: Store, scan_id: str) -> dict[str, Any]:
    """One census: its status, counts per status, and each shard's progress."""
    info = store.scan_info(resolve_scan(store, scan_id))
    counts = info.pop("counts")
    params = info.pop("params")
    shards = trends.shard_completeness(store, scan_id)
    parts = store.scan_parts(scan_id)
    by_part = {str(p["part"]): p for p in parts}
    for part in shards["parts"]:
        extra = by_part.get(str(part["part"]), {})
        part["host"] = extra.get("host")
        part["started_at"] = extra.get("started_at")
        part["finished_at"] = extra.get("finished_at")
        part["complete_pct"] = (
            None
            if not part["targets"]
            else round(100.0 * int(part["recorded"]) / int(part["targets"]), 1)
        )
    answered = store.scalar("SELECT coalesce(answered, 0) FROM scans WHERE scan_id = ?", [scan_id])
    return {
        **info,
        "answered": int(answered or 0),
        "counts": _json(counts),
        "params": _json(params),
        **shards,
    }


def _json(text: Any) -> Any:
    if text is None or not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


_DIFFS: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
_DIFF_LOCK = threading.Lock()

DIFF_COLUMNS = [
    Column("key", "Group"),
    Column("name", "Name"),
    Column("vulnerable_a", "Vulnerable in A", "int"),
    Column("vulnerable_b", "Vulnerable in B", "int"),
    Column("patched", "Patched", "int"),
    Column("mitigated", "Mitigated", "int"),
    Column("still_vulnerable", "Still vulnerable", "int"),
    Column("not_seen", "Not seen in B", "int"),
    Column("no_longer_exchange", "No longer Exchange", "int"),
    Column("newly_vulnerable", "Newly vulnerable", "int"),
    Column("newly_compromised", "Newly compromised", "int"),
    Column("no_longer_compromised", "No longer compromised", "int"),
    Column("patch_rate", "Patch rate %", "pct"),
]


def diff_groups(store: Store, scan_a: str, scan_b: str, by: str) -> list[dict[str, Any]]:
    """Per group, what became of A's vulnerable hosts in B (cached per enrichment state:
    the comparison reads both scans whole)."""
    if by not in trends.DIFF_GROUPS:
        raise UsageError(f"by is one of {', '.join(trends.DIFF_GROUPS)}")
    a, b = resolve_scan(store, scan_a), resolve_scan(store, scan_b)
    key = (
        store.location, a, b, by, groups.stamp_of(store, a), groups.stamp_of(store, b)
    )  # fmt: skip
    with _DIFF_LOCK:
        cached = _DIFFS.get(key)
    if cached is None:
        cached = [row.to_json() for row in trends.diff_scans(store, a, b, by)]
        with _DIFF_LOCK:
            _DIFFS[key] = cached
    return cached


CHANGE_COLUMNS = [
    Column("ip", "Address", "text", "ip_sort"),
    Column("port", "Port", "int", "port"),
    Column("country", "Country", "text", "country"),
    Column("organisation", "Organisation", "text", "organisation", raw=True),
    Column("before", "In A", "text", "before"),
    Column("after", "In B", "text", "after"),
    Column("compromise", "Web shells", "text", "compromise"),
]


_CHANGES: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
_CHANGE_KEYS = (
    "ip", "port", "ip_sort", "country", "organisation", "before", "after", "compromise",
)  # fmt: skip


def _changes(store: Store, a: str, b: str) -> list[dict[str, Any]]:
    """Every host vulnerable in A or B whose state changed, computed once per pair and
    enrichment state (the comparison reads both scans whole) and kept in memory."""
    key = (store.location, a, b, groups.stamp_of(store, a), groups.stamp_of(store, b))
    with _DIFF_LOCK:
        cached = _CHANGES.get(key)
    if cached is not None:
        return cached
    trends.ensure_checks(store, a, b)
    side = trends.side_sql(store)
    sql = (
        f"WITH a AS ({side}), b AS ({side}), c AS (SELECT coalesce(a.ip, b.ip) AS ip,"
        " coalesce(a.port, b.port) AS port, coalesce(a.ip_sort, b.ip_sort) AS ip_sort,"
        " coalesce(b.k, a.k) AS country,"
        " coalesce(b.organisation, a.organisation) AS organisation,"
        f" {trends.STATE.format(t='a')} AS before, {trends.STATE.format(t='b')} AS after,"
        f" {trends.COMPROMISE_CHANGE} AS compromise"
        " FROM a FULL OUTER JOIN b ON a.ip = b.ip AND a.port = b.port"
        " WHERE a.v OR b.v OR a.c OR b.c)"
        " SELECT * FROM c WHERE before <> after OR compromise IS NOT NULL"
    )
    with store.transaction():
        store.tune_for_aggregation()
        rows = [dict(zip(_CHANGE_KEYS, r, strict=True)) for r in store.query(sql, [a, b])]
    # Kept in the pages' default order: a page then slices the list instead of sorting it.
    rows.sort(key=_tie)
    with _DIFF_LOCK:
        if len(_CHANGES) > 8:
            _CHANGES.pop(next(iter(_CHANGES)))
        _CHANGES[key] = rows
    return rows


def prepare_diff(store: Store, scan_a: str, scan_b: str) -> None:
    """Compute the default diff page's comparison (by country, and its changed hosts) into
    this process's memory, so its first view does not read both scans whole."""
    diff_groups(store, scan_a, scan_b, "country")
    _changes(store, resolve_scan(store, scan_a), resolve_scan(store, scan_b))


def _tie(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (row["before"], row["after"], row["ip_sort"], row["port"])


def diff_hosts(store: Store, scan_a: str, scan_b: str, query: Mapping[str, str]) -> Listing:
    """Hosts vulnerable in A or B whose state changed, paginated over all of them."""
    a, b = resolve_scan(store, scan_a), resolve_scan(store, scan_b)
    paging = Paging.from_query(query, None)
    rows = _changes(store, a, b)
    filters: dict[str, str] = {}
    change = query.get("change")
    if change:
        before, _, after = change.partition(">")
        rows = [r for r in rows if r["before"] == before and r["after"] == after]
        filters["change"] = change
    sortable = {c.key for c in CHANGE_COLUMNS}
    if paging.sort is not None and paging.sort not in sortable:
        raise UsageError(f"cannot sort by {paging.sort!r}; one of {', '.join(sorted(sortable))}")
    tie = rows  # already in (before, after, address) order
    if paging.sort is not None:
        field = "ip_sort" if paging.sort == "ip" else paging.sort
        present = [r for r in tie if r[field] is not None]
        present.sort(key=lambda r: r[field], reverse=paging.descending)
        tie = present + [r for r in tie if r[field] is None]
    start = (paging.page - 1) * paging.per_page
    shown = [
        {
            k: r[k]
            for k in ("ip", "port", "country", "organisation", "before", "after", "compromise")
        }
        for r in tie[start : start + paging.per_page]
    ]
    return Listing(list(CHANGE_COLUMNS), shown, len(tie), paging, filters)


__all__ = [
    "CHANGE_COLUMNS",
    "DIFF_COLUMNS",
    "SCAN_COLUMNS",
    "diff_groups",
    "diff_hosts",
    "prepare_diff",
    "scan_listing",
    "scan_progress",
]
