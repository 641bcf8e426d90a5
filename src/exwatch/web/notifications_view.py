"""The notifications page: what `exwatch notify` recorded, when the store has its table.

The table belongs to the notify command (docs/notify.md describes its columns); this page
reads whatever columns it has, so a later column shows up without a change here.
"""

# SQL here is assembled from column names read from the database's own catalogue (checked
# to be plain identifiers); values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exwatch.store import Store
from exwatch.web.hosts_view import notification_columns
from exwatch.web.listing import Column, Listing, Paging, fetch, like


def available(store: Store) -> bool:
    return store.has_table("notifications")


def notification_listing(store: Store, query: Mapping[str, str]) -> Listing:
    names = notification_columns(store)
    columns = [Column(n, n.replace("_", " ").capitalize(), "text", n, raw=True) for n in names]
    order = next((c for c in ("sent_at", "created_at", "updated_at") if c in names), None)
    paging = Paging.from_query(query, order)
    where: list[str] = []
    params: list[Any] = []
    filters: dict[str, str] = {}
    text = (query.get("q") or "").strip()
    searchable = [n for n in ("organisation", "contact", "recipient", "state") if n in names]
    if text and searchable:
        where.append(
            "(" + " OR ".join(f"CAST({n} AS VARCHAR) ILIKE ? ESCAPE '\\'" for n in searchable) + ")"
        )
        params += [like(text)] * len(searchable)
        filters["q"] = text
    listing = fetch(
        store,
        columns=columns,
        select=", ".join(names) if names else "1 AS none",
        source="notifications",
        where=where,
        params=params,
        paging=paging,
        tiebreak=names[0] if names else "1",
        filters=filters,
    )
    for row in listing.rows:
        for key, value in row.items():
            if value is not None and not isinstance(value, bool | int | float | str):
                row[key] = str(value)
    return listing


def per_organisation(store: Store) -> list[dict[str, Any]]:
    """Messages per organisation and state (sent, reminded, fixed...), when both exist."""
    names = notification_columns(store)
    state = next((c for c in ("state", "status", "kind") if c in names), None)
    if "organisation" not in names or state is None:
        return []
    rows = store.query(
        f"SELECT organisation, {state}, count(*) FROM notifications GROUP BY 1, 2 ORDER BY 1, 2"
    )
    out: dict[str, dict[str, Any]] = {}
    for organisation, value, n in rows:
        key = str(organisation)
        item = out.setdefault(key, {"organisation": organisation, "states": {}})
        item["states"][str(value)] = int(n)
    return list(out.values())


__all__ = ["available", "notification_listing", "per_organisation"]
