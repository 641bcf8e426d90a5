"""Exports in formats CERT pipelines already read: Shadowserver `scan_exchange` CSV, JSONL, Parquet.

The CSV has exactly Shadowserver's columns, so IntelMQ's Shadowserver parser (and AbuseIO)
ingest it unchanged: `tag` is `exchange;cve-…` (lower case), `version` the build, `servername`
the NTLM NetBIOS computer name or else the X-FEServer header, `geo` the country, `sector` our
sector.  A cell a spreadsheet would take for a formula (starting with = + - @ or a tab or line
break: OWASP's CSV injection rule) gets a leading ', since CERTs forward these files to people
who open them in Excel; `--raw` writes values exactly as the servers sent them, for machines.
The csv module quotes separators and newlines.  Split exports name files like Shadowserver does:
`YYYY-MM-DD-scan_exchange-<country or organisation>.<ext>`.
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, paths) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from exwatch.errors import UsageError
from exwatch.onprem import on_prem_sql
from exwatch.store import Store

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
SELECT {stamp} AS ts_text, {iso} AS ts, e.ip, e.port, r.hostname, e.ptr,
       e.country, e.asn, e.as_name, e.organisation,
       e.sector, e.build, e.product, e.cu, e.vulnerable, e.eol, e.vulnerable_cves,
       r.ntlm_netbios_computer AS ntlm_computer, r.x_feserver,
       r.record, e.evidence, e.country_source, e.asn_source, e.scan_id
FROM enrichment e JOIN results r
  ON r.scan_id = e.scan_id AND r.ip = e.ip AND r.port = e.port AND r.ts = e.ts
WHERE e.scan_id = ? AND {on_prem} {only} {group}
ORDER BY e.country NULLS LAST, e.ip_sort, e.port
"""

_EXPORT_NAMES = (
    "ts_text", "ts", "ip", "port", "hostname", "ptr", "country", "asn", "as_name",
    "organisation", "sector", "build", "product", "cu", "vulnerable", "eol", "vulnerable_cves",
    "ntlm_computer", "x_feserver", "record", "evidence", "country_source", "asn_source",
    "scan_id",
)  # fmt: skip

# Parquet columns (written by DuckDB in memory, whatever the store's backend).
_PARQUET_TYPES = {
    "ts": "TIMESTAMPTZ", "ip": "VARCHAR", "port": "INTEGER", "hostname": "VARCHAR",
    "ptr": "VARCHAR", "country": "VARCHAR", "asn": "BIGINT", "as_name": "VARCHAR",
    "organisation": "VARCHAR", "sector": "VARCHAR", "build": "VARCHAR", "product": "VARCHAR",
    "cu": "VARCHAR", "vulnerable": "BOOLEAN", "eol": "BOOLEAN", "vulnerable_cves": "VARCHAR[]",
    "ntlm_computer": "VARCHAR", "x_feserver": "VARCHAR", "record": "JSON", "evidence": "JSON",
    "country_source": "VARCHAR", "asn_source": "VARCHAR", "scan_id": "VARCHAR",
}  # fmt: skip

# OWASP's CSV injection rule: a cell starting with one of these is a formula to a spreadsheet.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralise(value: Any) -> Any:
    """A text cell a spreadsheet will not run: prefixed with ' when it starts like a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _where(
    store: Store, all_exchange: bool, per: Per | None, value: object
) -> tuple[str, list[Any]]:
    only = "" if all_exchange else "AND (e.vulnerable OR e.eol)"
    group, params = "", []
    if per is not None:
        column = "e.country" if per == "country" else "e.organisation"
        if value is None:
            group = f"AND {column} IS NULL"
        else:
            group, params = f"AND {column} = ?", [value]
    d = store.dialect
    sql = _SELECT.format(
        stamp=d.stamp("e.ts"),
        iso=d.iso("e.ts", micro=True),
        on_prem=on_prem_sql("e"),
        only=only,
        group=group,
    )
    return sql, params


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


def _write_text(
    store: Store,
    fmt: ExportFormat,
    sql: str,
    params: list[Any],
    out: IO[str],
    raw: bool,
) -> int:
    count = 0
    names = _names(sql)
    rows = (dict(zip(names, values, strict=True)) for values in store.stream(sql, params))
    if fmt == "shadowserver":
        writer = csv.DictWriter(out, fieldnames=SHADOWSERVER_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            line = shadowserver_row(row)
            writer.writerow(line if raw else {k: neutralise(v) for k, v in line.items()})
            count += 1
    else:
        for row in rows:
            out.write(json.dumps(jsonl_object(row), separators=(",", ":"), default=str))
            out.write("\n")
            count += 1
    return count


def _names(sql: str) -> list[str]:
    """Output column names of _SELECT, in order (the store streams bare tuples)."""
    return list(_EXPORT_NAMES)


def _write_parquet(store: Store, sql: str, params: list[Any], path: Path) -> int:
    # Rows go through a temporary JSON lines file into an in-memory DuckDB, which writes the
    # Parquet (no pyarrow needed), whatever backend holds the store.
    import duckdb

    names = _names(sql)
    fd, tmp = tempfile.mkstemp(prefix="exwatch-export-", suffix=".jsonl")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for values in store.stream(sql, params):
                row = dict(zip(names, values, strict=True))
                item = {k: row.get(k) for k in _PARQUET_TYPES}
                for key in ("record", "evidence"):
                    text = item[key]
                    item[key] = json.loads(text) if isinstance(text, str) else text
                handle.write(json.dumps(item, default=str) + "\n")
                count += 1
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            columns = ", ".join(f"'{k}': '{v}'" for k, v in _PARQUET_TYPES.items())
            con.execute(
                f"COPY (SELECT * FROM read_json(?, format = 'newline_delimited',"
                f" columns = {{{columns}}}, maximum_object_size = 268435456))"
                " TO ? (FORMAT parquet, COMPRESSION zstd)",
                [tmp, str(path)],
            )
        finally:
            con.close()
    finally:
        os.unlink(tmp)
    return count


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary file beside `path`, renamed over it only when complete: a failed export
    never leaves half a file (nor a header without rows)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _one_file(
    store: Store, fmt: ExportFormat, sql: str, params: list[Any], path: Path, raw: bool
) -> int:
    with _atomic(path) as tmp:
        if fmt == "parquet":
            return _write_parquet(store, sql, params, tmp)
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            return _write_text(store, fmt, sql, params, handle, raw)


def slug(value: object) -> str:
    """A file-name-safe group name (organisation names may come from scanned servers)."""
    text = _SLUG.sub("-", str(value).lower()).strip("-")
    return text[:60].strip("-") or "unknown"


def to_stdout(write: Callable[[IO[str]], int]) -> int:
    """Rows `write` wrote, sent to standard output only once all were written (no half
    export on error)."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:
        count = write(spool)
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout)
        sys.stdout.flush()
    return count


def group_files(
    output: str, groups: Iterable[object], scan_date: str | None, ext: str
) -> Iterator[tuple[object, Path]]:
    """For `--per`: each group's file in the directory `output`, named like Shadowserver's
    (YYYY-MM-DD of the scan, `scan_exchange`, the group's slug, unique in the directory)."""
    if output == "-":
        raise UsageError("--per writes one file per group; give -o DIRECTORY")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--per needs a directory, and {output} is a file")
    folder.mkdir(parents=True, exist_ok=True)
    day = (scan_date or datetime.now(UTC).isoformat())[:10]  # YYYY-MM-DD of the scan
    used: set[str] = set()
    for value in groups:
        name = slug(value) if value is not None else "unknown"
        base, n = name, 2
        while name in used:  # two organisations may slug alike
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        yield value, folder / f"{day}-scan_exchange-{name}.{ext}"


def export(
    store: Store,
    scan_id: str,
    fmt: ExportFormat,
    output: str,
    *,
    per: Per | None = None,
    all_exchange: bool = False,
    scan_date: str | None = None,
    raw: bool = False,
) -> list[tuple[str, int]]:
    """Write the export; returns (file, rows) for each file written (`-` is stdout).

    Shadowserver CSV cells that a spreadsheet would take for a formula are prefixed with '
    unless `raw` (for machine pipelines that want the values exactly as servers sent them).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    if per is None:
        sql, params = _where(store, all_exchange, None, None)
        params.insert(0, scan_id)
        if fmt == "parquet":
            if output == "-":
                raise UsageError("Parquet cannot go to standard output; give -o FILE")
            return [(output, _one_file(store, fmt, sql, params, Path(output), raw))]
        if output == "-":
            return [("-", to_stdout(lambda out: _write_text(store, fmt, sql, params, out, raw)))]
        return [(output, _one_file(store, fmt, sql, params, Path(output), raw))]
    column = "country" if per == "country" else "organisation"
    only = "" if all_exchange else " AND (vulnerable OR eol)"
    groups = [
        r[0]
        for r in store.query(
            f"SELECT DISTINCT {column} FROM enrichment WHERE scan_id = ? AND {on_prem_sql()}{only}"
            " ORDER BY 1 NULLS LAST",
            [scan_id],
        )
    ]
    written: list[tuple[str, int]] = []
    for value, path in group_files(output, groups, scan_date, _EXTENSION[fmt]):
        sql, params = _where(store, all_exchange, per, value)
        params.insert(0, scan_id)
        written.append((str(path), _one_file(store, fmt, sql, params, path, raw)))
    return written


__all__ = [
    "FORMATS",
    "SHADOWSERVER_COLUMNS",
    "ExportFormat",
    "Per",
    "export",
    "group_files",
    "jsonl_object",
    "neutralise",
    "severity",
    "shadowserver_row",
    "slug",
    "to_stdout",
]
