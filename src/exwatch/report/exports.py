"""Exports in formats CERT pipelines already read: Shadowserver `scan_exchange` CSV, JSONL, Parquet.

The CSV has exactly Shadowserver's columns, so IntelMQ's Shadowserver parser (and AbuseIO)
ingest it unchanged: `tag` is `exchange;cve-…` (lower case), `version` the build, `servername`
the NTLM NetBIOS computer name or else the X-FEServer header, `geo` the country, `sector` our
sector.  Values are written as the servers sent them (machines read this file); the csv module
quotes separators and newlines.  Split exports name files like Shadowserver does:
`YYYY-MM-DD-scan_exchange-<country or organisation>.<ext>`.
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, paths) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import duckdb

from exwatch.errors import UsageError

ExportFormat = Literal["shadowserver", "jsonl", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("shadowserver", "jsonl", "parquet")
Per = Literal["country", "organisation"]

SHADOWSERVER_COLUMNS = (
    "timestamp", "severity", "ip", "protocol", "port", "hostname", "tag", "asn", "geo",
    "region", "city", "naics", "hostname_source", "sector", "version", "servername", "url",
)  # fmt: skip
_EXTENSION = {"shadowserver": "csv", "jsonl": "jsonl", "parquet": "parquet"}
_SLUG = re.compile(r"[^a-z0-9]+")

# Rows exported: Exchange hosts with a vulnerable verdict or an end-of-life product, unless
# every Exchange host is asked for.
_SELECT = """
SELECT {ts}strftime(e.ts, '%Y-%m-%d %H:%M:%S') AS ts_text, e.ip, e.port, r.hostname, e.ptr,
       e.country, e.asn, e.as_name, e.organisation,
       e.sector, e.build, e.product, e.cu, e.vulnerable, e.eol, e.vulnerable_cves,
       json_extract_string(r.record, '$.ntlm.netbios_computer') AS ntlm_computer,
       json_extract_string(r.record, '$.headers."x-feserver"') AS x_feserver,
       r.record, e.evidence, e.country_source, e.asn_source, e.scan_id
FROM enrichment e JOIN results r
  ON r.scan_id = e.scan_id AND r.ip = e.ip AND r.port = e.port AND r.ts = e.ts
WHERE e.scan_id = $scan AND e.is_exchange {only} {group}
ORDER BY e.country NULLS LAST, e.ip, e.port
"""


def _where(
    all_exchange: bool, per: Per | None, value: object, fmt: ExportFormat
) -> tuple[str, dict[str, Any]]:
    # Python never fetches the TIMESTAMPTZ itself (that would need pytz); Parquet keeps it.
    ts = "e.ts, " if fmt == "parquet" else ""
    only = "" if all_exchange else "AND (e.vulnerable OR e.eol)"
    group, params = "", {}
    if per is not None:
        column = "e.country" if per == "country" else "e.organisation"
        if value is None:
            group = f"AND {column} IS NULL"
        else:
            group, params = f"AND {column} = $group", {"group": value}
    return _SELECT.format(ts=ts, only=only, group=group), params


def severity(vulnerable: bool, eol: bool) -> str:
    if vulnerable:
        return "critical"
    return "high" if eol else "info"


def shadowserver_row(row: dict[str, Any]) -> dict[str, Any]:
    cves = [c.lower() for c in (row.get("vulnerable_cves") or [])]
    ip, port = str(row["ip"]), int(row["port"])
    hostname = row.get("hostname")
    source = "target" if hostname else None
    if not hostname and row.get("ptr"):
        hostname, source = row["ptr"], "rdns"
    host = f"[{ip}]" if ":" in ip else ip
    scheme = "http" if port == 80 else "https"
    return {
        "timestamp": row["ts_text"],
        "severity": severity(bool(row.get("vulnerable")), bool(row.get("eol"))),
        "ip": ip,
        "protocol": "tcp",
        "port": port,
        "hostname": hostname or "",
        "tag": ";".join(["exchange", *cves]),
        "asn": row.get("asn") if row.get("asn") is not None else "",
        "geo": row.get("country") or "",
        "region": "",
        "city": "",
        "naics": "",
        "hostname_source": source or "",
        "sector": row.get("sector") if row.get("sector") not in (None, "unknown") else "",
        "version": row.get("build") or "",
        "servername": row.get("ntlm_computer") or row.get("x_feserver") or "",
        "url": f"{scheme}://{host}:{port}/owa/",
    }


def jsonl_object(row: dict[str, Any]) -> dict[str, Any]:
    """The stored record as scanned, plus the `enrichment` object beside it."""
    try:
        record = json.loads(row["record"]) if isinstance(row.get("record"), str) else {}
    except ValueError:
        record = {}
    if not isinstance(record, dict):
        record = {}
    try:
        evidence = json.loads(row["evidence"]) if isinstance(row.get("evidence"), str) else None
    except ValueError:
        evidence = None
    record["enrichment"] = evidence
    return record


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    cur = con.cursor()
    try:
        cur.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        while batch := cur.fetchmany(10_000):
            for values in batch:
                yield dict(zip(names, values, strict=True))
    finally:
        cur.close()


def _write_text(
    con: duckdb.DuckDBPyConnection,
    fmt: ExportFormat,
    sql: str,
    params: dict[str, Any],
    out: IO[str],
) -> int:
    count = 0
    if fmt == "shadowserver":
        writer = csv.DictWriter(out, fieldnames=SHADOWSERVER_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in _rows(con, sql, params):
            writer.writerow(shadowserver_row(row))
            count += 1
    else:
        for row in _rows(con, sql, params):
            out.write(json.dumps(jsonl_object(row), separators=(",", ":"), default=str))
            out.write("\n")
            count += 1
    return count


def _write_parquet(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], path: Path
) -> int:
    # The typed columns plus the record and enrichment; written by DuckDB (no pyarrow needed).
    con.execute(
        f"COPY ({sql}) TO $path (FORMAT parquet, COMPRESSION zstd)", {**params, "path": str(path)}
    )
    row = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()
    return int(row[0]) if row else 0


def slug(value: object) -> str:
    """A file-name-safe group name (organisation names may come from scanned servers)."""
    text = _SLUG.sub("-", str(value).lower()).strip("-")
    return text[:60].strip("-") or "unknown"


def export(
    con: duckdb.DuckDBPyConnection,
    scan_id: str,
    fmt: ExportFormat,
    output: str,
    *,
    per: Per | None = None,
    all_exchange: bool = False,
    scan_date: str | None = None,
) -> list[tuple[str, int]]:
    """Write the export; returns (file, rows) for each file written (`-` is stdout)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    if per is None:
        sql, params = _where(all_exchange, None, None, fmt)
        params["scan"] = scan_id
        if fmt == "parquet":
            if output == "-":
                raise UsageError("Parquet cannot go to standard output; give -o FILE")
            return [(output, _write_parquet(con, sql, params, Path(output)))]
        if output == "-":
            return [("-", _write_text(con, fmt, sql, params, sys.stdout))]
        with open(output, "w", encoding="utf-8", newline="") as handle:
            return [(output, _write_text(con, fmt, sql, params, handle))]
    if output == "-":
        raise UsageError("--per writes one file per group; give -o DIRECTORY")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--per needs a directory, and {output} is a file")
    folder.mkdir(parents=True, exist_ok=True)
    column = "country" if per == "country" else "organisation"
    only = "" if all_exchange else " AND (vulnerable OR eol)"
    groups = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT {column} FROM enrichment WHERE scan_id = ? AND is_exchange{only}"
            " ORDER BY 1 NULLS LAST",
            [scan_id],
        ).fetchall()
    ]
    day = (scan_date or datetime.now(UTC).isoformat())[:10]  # YYYY-MM-DD of the scan
    written: list[tuple[str, int]] = []
    used: set[str] = set()
    for value in groups:
        name = slug(value) if value is not None else "unknown"
        base, n = name, 2
        while name in used:  # two organisations may slug alike
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        path = folder / f"{day}-scan_exchange-{name}.{_EXTENSION[fmt]}"
        sql, params = _where(all_exchange, per, value, fmt)
        params["scan"] = scan_id
        if fmt == "parquet":
            written.append((str(path), _write_parquet(con, sql, params, path)))
        else:
            with open(path, "w", encoding="utf-8", newline="") as handle:
                written.append((str(path), _write_text(con, fmt, sql, params, handle)))
    return written


__all__ = [
    "FORMATS",
    "SHADOWSERVER_COLUMNS",
    "ExportFormat",
    "Per",
    "export",
    "jsonl_object",
    "severity",
    "shadowserver_row",
    "slug",
]
