"""The `enrichment` table: country, AS, organisation and sector beside each answering result.

Keyed like `results` (scan_id, ip, port, ts).  Only rows with status `success` are enriched:
an address that did not answer gives no organisation evidence and is not counted per group.
The verdict columns (status, is_exchange, vulnerable, eol, build, cves...) are copied from
`results` when a row is enriched, so a per-country count over 10 M rows reads one table
(about 0.2 s) instead of joining two (about 1 s on two cores).  Results are append-only, so
the copy stays true; `refresh=True` rebuilds rows if results were ever re-assessed.

Who fills it: `exwatch enrich` (explicitly, with its sources), and `report`, `diff` and
`export`, which enrich the rows still missing with the sources they are given before they
read, so a report never silently leaves rows out.
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, paths) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb

from exwatch.errors import StoreError

# Timestamps leave DuckDB as text: fetching TIMESTAMPTZ into Python would need pytz.

ENRICHMENT_DDL = """
CREATE TABLE IF NOT EXISTS enrichment (
    scan_id VARCHAR NOT NULL,
    ip VARCHAR NOT NULL,
    port INTEGER NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    country VARCHAR,
    country_source VARCHAR,
    asn BIGINT,
    as_name VARCHAR,
    asn_source VARCHAR,
    organisation VARCHAR,
    sector VARCHAR,
    matched_by VARCHAR,
    confidence VARCHAR,
    ptr VARCHAR,                      -- forward-confirmed reverse name, when resolved
    status VARCHAR,                   -- copied from results (see module docstring)
    is_exchange BOOLEAN,
    vulnerable BOOLEAN,
    eol BOOLEAN,
    build VARCHAR,
    product VARCHAR,
    cu VARCHAR,
    vulnerable_cves VARCHAR[],
    cves MAP(VARCHAR, VARCHAR),
    evidence JSON,                    -- the enricher's whole answer
    enriched_at TIMESTAMPTZ
);
"""

_COLUMNS = {
    "scan_id": "VARCHAR",
    "ip": "VARCHAR",
    "port": "INTEGER",
    "ts": "TIMESTAMPTZ",
    "country": "VARCHAR",
    "country_source": "VARCHAR",
    "asn": "BIGINT",
    "as_name": "VARCHAR",
    "asn_source": "VARCHAR",
    "organisation": "VARCHAR",
    "sector": "VARCHAR",
    "matched_by": "VARCHAR",
    "confidence": "VARCHAR",
    "ptr": "VARCHAR",
    "status": "VARCHAR",
    "is_exchange": "BOOLEAN",
    "vulnerable": "BOOLEAN",
    "eol": "BOOLEAN",
    "build": "VARCHAR",
    "product": "VARCHAR",
    "cu": "VARCHAR",
    "vulnerable_cves": "VARCHAR[]",
    "cves": "MAP(VARCHAR, VARCHAR)",
    "evidence": "JSON",
    "enriched_at": "TIMESTAMPTZ",
}

_COPIED = "status, is_exchange, vulnerable, eol, build, product, cu, vulnerable_cves, cves, record"


class RecordEnricher(Protocol):
    """What we need of `exwatch.enrich.Enricher` (kept narrow so tests can pass their own)."""

    rdns: bool
    warnings: list[str]

    @property
    def sources(self) -> Mapping[str, str | None]: ...

    def enrich_batch(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...

    async def enrich_many(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...


@dataclass
class EnrichOutcome:
    rows: int = 0
    scans: set[str] = field(default_factory=set)
    bad_records: int = 0


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(ENRICHMENT_DDL)


def has_table(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'enrichment'"
    ).fetchone()
    return bool(row and row[0])


def missing_count(con: duckdb.DuckDBPyConnection, scan_ids: Iterable[str] | None = None) -> int:
    """Answering results that have no enrichment row yet."""
    if not has_table(con):
        where, args = _scan_filter(scan_ids)
        row = con.execute(
            f"SELECT count(*) FROM results r WHERE status = 'success'{where}", args
        ).fetchone()
        return int(row[0]) if row else 0
    where, args = _scan_filter(scan_ids)
    row = con.execute(_MISSING.format(select="count(*)", where=where), args).fetchone()
    return int(row[0]) if row else 0


_MISSING = (
    "SELECT {select} FROM results r WHERE r.status = 'success'{where}"
    " AND NOT EXISTS (SELECT 1 FROM enrichment e WHERE e.scan_id = r.scan_id"
    " AND e.ip = r.ip AND e.port = r.port AND e.ts = r.ts)"
)


def _scan_filter(scan_ids: Iterable[str] | None) -> tuple[str, list[Any]]:
    if scan_ids is None:
        return "", []
    ids = sorted(set(scan_ids))
    return " AND list_contains(?, r.scan_id)", [ids]


def enrich_store(
    con: duckdb.DuckDBPyConnection,
    enricher: RecordEnricher,
    scan_ids: Iterable[str] | None = None,
    *,
    refresh: bool = False,
    batch: int = 20_000,
) -> EnrichOutcome:
    """Enrich every answering result that lacks a row (all of them with `refresh`)."""
    ensure_table(con)
    scan_list = None if scan_ids is None else sorted(set(scan_ids))
    where, args = _scan_filter(scan_list)
    if refresh:
        con.execute(
            "DELETE FROM enrichment"
            + ("" if scan_list is None else " WHERE list_contains(?, scan_id)"),
            args,
        )
    outcome = EnrichOutcome()
    reader = con.cursor()  # a second cursor: the main one writes while this one streams
    try:
        reader.execute(
            _MISSING.format(
                select=f"r.scan_id, r.ip, r.port, CAST(r.ts AS VARCHAR), {_COPIED}", where=where
            )
            + " ORDER BY r.scan_id",
            args,
        )
        while rows := reader.fetchmany(batch):
            _write_batch(con, enricher, rows, outcome)
    except duckdb.Error as exc:
        raise StoreError(f"cannot enrich results: {exc}") from None
    finally:
        reader.close()
    return outcome


def _parse_record(text: object) -> tuple[dict[str, Any], bool]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        value = None
    return (value, True) if isinstance(value, dict) else ({}, False)


def _write_batch(
    con: duckdb.DuckDBPyConnection,
    enricher: RecordEnricher,
    rows: list[tuple[Any, ...]],
    outcome: EnrichOutcome,
) -> None:
    records: list[dict[str, Any]] = []
    for row in rows:
        record, ok = _parse_record(row[-1])
        if not ok:
            outcome.bad_records += 1
            # Enrich from the typed columns alone: the address still gets a country.
            record = {"ip": row[1], "port": row[2]}
        records.append(record)
    if enricher.rdns:
        answers = asyncio.run(enricher.enrich_many(records))
    else:
        answers = enricher.enrich_batch(records)
    stamp = datetime.now(UTC).isoformat()
    fd, tmp = tempfile.mkstemp(prefix="exwatch-enrich-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row, answer in zip(rows, answers, strict=True):
                handle.write(json.dumps(_line(row, answer, stamp), default=str))
                handle.write("\n")
        columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in _COLUMNS.items()) + "}"
        con.execute(
            f"INSERT INTO enrichment ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)}"
            f" FROM read_json(?, format = 'newline_delimited', columns = {columns},"
            " maximum_object_size = 67108864)",
            [tmp],
        )
    finally:
        os.unlink(tmp)
    outcome.rows += len(rows)
    outcome.scans.update(str(r[0]) for r in rows)


def _line(row: tuple[Any, ...], answer: Mapping[str, Any], stamp: str) -> dict[str, Any]:
    scan_id, ip, port, ts, status, is_exchange, vulnerable, eol = row[:8]
    build, product, cu, vulnerable_cves, cves = row[8:13]
    attribution = answer.get("attribution") or {}
    ptr = answer.get("ptr") or {}
    asn = answer.get("asn")
    return {
        "scan_id": scan_id,
        "ip": ip,
        "port": port,
        "ts": ts.isoformat() if isinstance(ts, datetime) else ts,
        "country": answer.get("country"),
        "country_source": answer.get("country_source"),
        "asn": asn if isinstance(asn, int) else None,
        "as_name": answer.get("as_name"),
        "asn_source": answer.get("asn_source"),
        "organisation": answer.get("organisation"),
        "sector": answer.get("sector") or "unknown",
        "matched_by": attribution.get("matched_by") if isinstance(attribution, dict) else None,
        "confidence": attribution.get("confidence") if isinstance(attribution, dict) else None,
        "ptr": ptr.get("name") if isinstance(ptr, dict) and ptr.get("confirmed") else None,
        "status": status,
        "is_exchange": is_exchange,
        "vulnerable": vulnerable,
        "eol": eol,
        "build": build,
        "product": product,
        "cu": cu,
        "vulnerable_cves": vulnerable_cves,
        "cves": dict(cves) if cves else None,
        "evidence": dict(answer),
        "enriched_at": stamp,
    }


def sources(
    con: duckdb.DuckDBPyConnection, scan_ids: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """Distinct country and AS sources used for the given scans (what every report states)."""
    if not has_table(con):
        return {"country": [], "asn": []}
    ids = None if scan_ids is None else sorted(set(scan_ids))
    where = "" if ids is None else " WHERE list_contains(?, scan_id)"
    args: list[Any] = [] if ids is None else [ids]
    out: dict[str, list[str]] = {}
    for kind in ("country", "asn"):
        rows = con.execute(
            f"SELECT DISTINCT {kind}_source FROM enrichment{where} ORDER BY 1", args
        ).fetchall()
        out[kind] = [str(r[0]) for r in rows if r[0] is not None]
    return out


__all__ = [
    "ENRICHMENT_DDL",
    "EnrichOutcome",
    "RecordEnricher",
    "enrich_store",
    "ensure_table",
    "has_table",
    "missing_count",
    "sources",
]
