"""Drill-down tables: countries, then ASes or sectors of a country, then organisations."""

# SQL here is assembled from fixed column names of this module; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exwatch.errors import UsageError
from exwatch.report.worldmap import country_name, world_shapes
from exwatch.store import Store
from exwatch.web import groups
from exwatch.web.listing import Column, Listing, Paging, fetch, like

NONE = "~none"  # stands for "not known" (no country, AS or organisation) in URLs

_DERIVED = {
    "vulnerable_pct": "100.0 * g.vulnerable / nullif(g.exchange, 0)",
    "avg_days_behind": "1.0 * g.lag_days / nullif(g.lag_hosts, 0)",
    "behind_pct": "100.0 * g.behind / nullif(g.exchange, 0)",
}


def count_columns(compromise: bool) -> list[Column]:
    cols = [
        Column("hosts", "Hosts", "int", "g.hosts"),
        Column("exchange", "Exchange", "int", "g.exchange"),
        Column("vulnerable", "Vulnerable", "int", "g.vulnerable"),
        Column("vulnerable_pct", "% vulnerable", "pct", _DERIVED["vulnerable_pct"]),
        Column("kev", "KEV", "int", "g.kev"),
        Column("eol", "End of life", "int", "g.eol"),
        Column("avg_days_behind", "Avg days behind", "float", _DERIVED["avg_days_behind"]),
        Column("behind_pct", "% behind CU", "pct", _DERIVED["behind_pct"]),
    ]
    if compromise:
        cols += [
            Column("checked", "Checked", "int", "g.checked"),
            Column("compromised", "Compromised", "int", "g.compromised"),
        ]
    return cols


_KEYS: dict[str, list[Column]] = {
    "country": [
        Column("country", "Country", "text", "g.country"),
        Column("name", "Name"),
    ],
    "asn": [
        Column("asn", "AS", "int", "g.asn"),
        Column("as_name", "AS name", "text", "g.label", raw=True),
    ],
    "sector": [Column("sector", "Sector", "text", "g.sector")],
    "asn_org": [
        Column("organisation", "Organisation", "text", "g.organisation", raw=True),
        Column("sector", "Sector", "text", "g.label"),
    ],
    "sector_org": [
        Column("organisation", "Organisation", "text", "g.organisation", raw=True),
        Column("sector", "Sector", "text", "g.label"),
    ],
}
_SELECT = {
    "country": "g.country",
    "asn": "g.asn, g.label AS as_name",
    "sector": "g.sector",
    "asn_org": "g.organisation, g.label AS sector",
    "sector_org": "g.organisation, g.label AS sector",
}
_TIEBREAK = {
    "country": "g.country",
    "asn": "g.asn",
    "sector": "g.sector",
    "asn_org": "g.organisation",
    "sector_org": "g.organisation",
}


def equals(column: str, value: str | None) -> tuple[str, list[Any]]:
    """`column = value`, or IS NULL for the NONE sentinel."""
    if value == NONE:
        return f"{column} IS NULL", []
    return f"{column} = ?", [value]


def asn_value(text: str) -> str:
    if text == NONE:
        return NONE
    digits = text.upper().removeprefix("AS")
    # ASCII digits only: isdigit() also takes superscripts ("³¹"), which int() refuses.
    if not (digits.isascii() and digits.isdigit()):
        raise UsageError(f"asn must be an AS number such as 64496, not {text[:40]!r}")
    return digits


def country_value(text: str) -> str:
    code = text.strip().upper()
    if code == NONE.upper():
        return NONE
    if len(code) != 2 or not code.isalpha():
        raise UsageError("country is an ISO 3166-1 alpha-2 code such as BE")
    return code


def group_listing(
    store: Store,
    scan_id: str,
    level: str,
    query: Mapping[str, str],
    *,
    country: str | None = None,
    asn: str | None = None,
    sector: str | None = None,
) -> Listing:
    if level not in groups.LEVELS:
        raise UsageError(f"unknown level {level!r}")
    compromise = groups.has_checks(store, scan_id)
    columns = [*_KEYS[level], *count_columns(compromise)]
    paging = Paging.from_query(query, "vulnerable")
    source, source_params = groups.base_sql(store, scan_id)
    where = ["g.scan_id = ?", "g.level = ?"]
    params: list[Any] = [scan_id, level]
    filters: dict[str, str] = {}
    for name, column, value in (
        ("country", "g.country", country),
        ("asn", "g.asn", asn),
        ("sector", "g.sector", sector),
    ):
        if value is not None:
            clause, args = equals(column, value)
            if name == "asn" and args:
                args = [int(args[0])]
            where.append(clause)
            params += args
            filters[name] = value
    text = (query.get("q") or "").strip()
    if text:
        filters["q"] = text
        if level == "country":
            codes = [c for c, n in world_shapes().names.items() if text.lower() in n.lower()]
            codes.append(text.upper())
            placeholders = ", ".join("?" for _ in codes)
            where.append(f"g.country IN ({placeholders})")
            params += codes
        else:
            key = {"asn": "CAST(g.asn AS VARCHAR)", "sector": "g.sector"}.get(
                level, "g.organisation"
            )
            where.append(f"({key} ILIKE ? ESCAPE '\\' OR g.label ILIKE ? ESCAPE '\\')")
            params += [like(text), like(text)]
    if query.get("vulnerable") == "1":
        filters["vulnerable"] = "1"
        where.append("g.vulnerable > 0")
    counts = ", ".join(
        f"{_DERIVED[c.key]} AS {c.key}" if c.key in _DERIVED else f"g.{c.key}"
        for c in count_columns(compromise)
    )
    listing = fetch(
        store,
        columns=columns,
        select=f"{_SELECT[level]}, {counts}",
        source=source,
        source_params=source_params,
        where=where,
        params=params,
        paging=paging,
        tiebreak=_TIEBREAK[level],
        filters=filters,
    )
    for row in listing.rows:
        tidy(row)
        if level == "country":
            row["name"] = country_name(row["country"]) if row["country"] else "unknown"
    return listing


def tidy(row: dict[str, Any]) -> None:
    """Numbers as JSON wants them: counts as int, ratios rounded to one decimal."""
    for key, value in row.items():
        if key in _DERIVED:
            row[key] = None if value is None else round(float(value), 1)
        elif key in ("hosts", "exchange", "vulnerable", "kev", "eol", "checked", "compromised"):
            row[key] = int(value or 0)
        elif key == "asn" and value is not None:
            row[key] = int(value)


def totals(store: Store, scan_id: str, country: str | None = None) -> dict[str, Any]:
    """Headline counts of a scan (or one country) from its country rows."""
    source, source_params = groups.base_sql(store, scan_id)
    where = "g.scan_id = ? AND g.level = 'country'"
    params: list[Any] = [scan_id]
    if country is not None:
        clause, args = equals("g.country", country)
        where += f" AND {clause}"
        params += args
    sums = ", ".join(f"CAST(coalesce(sum(g.{c}), 0) AS BIGINT) AS {c}" for c in groups.COUNTS)
    names, rows = store.columns_of(
        f"SELECT {sums}, count(*) FILTER (WHERE g.vulnerable > 0) AS countries_with_vulnerable"
        f" FROM {source} WHERE {where}",
        [*source_params, *params],
    )
    out: dict[str, Any] = {n: int(v or 0) for n, v in zip(names, rows[0], strict=True)}
    out["vulnerable_pct"] = _pct(out["vulnerable"], out["exchange"])
    out["exchange_pct"] = _pct(out["exchange"], out["hosts"])
    out["eol_pct"] = _pct(out["eol"], out["exchange"])
    out["kev_pct"] = _pct(out["kev"], out["exchange"])
    out["avg_days_behind"] = (
        None if not out["lag_hosts"] else round(out["lag_days"] / out["lag_hosts"], 1)
    )
    return out


def _pct(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(100.0 * part / whole, 1)


def per_country(store: Store, scan_id: str) -> list[dict[str, Any]]:
    """Vulnerable and answering hosts per country (the map)."""
    source, source_params = groups.base_sql(store, scan_id)
    return store.dicts(
        f"SELECT g.country, g.hosts, g.exchange, g.vulnerable, g.kev FROM {source}"
        " WHERE g.scan_id = ? AND g.level = 'country'",
        [*source_params, scan_id],
    )


__all__ = [
    "NONE",
    "asn_value",
    "count_columns",
    "country_value",
    "equals",
    "group_listing",
    "per_country",
    "tidy",
    "totals",
]
