"""Store speed on both backends, same rows: write (scanner appends), ingest, report.

Usage: .venv/bin/python bench/store_bench.py [--rows 200000] [--ingest-rows N]
           [--backends duckdb,postgresql] [--pg postgresql://postgres@127.0.0.1/postgres]

For each backend: append --rows records in batches through the store (the scanner's path:
record -> typed row -> DuckDB bulk file load / PostgreSQL COPY), enrich the answering ones
(exwatch's enricher, offline) and report on them, ingest a JSONL file of --ingest-rows lines
(validation, dedup), then give --rows numbers an enrichment row each (generated in the
database, the same values on both) and time the reports: by country cold (a full rollup
build, which rows enriched by exwatch never need) and warm, by sector, headline totals, and
the freshness check every report makes first.  Prints figures per backend and the
PostgreSQL/DuckDB ratio.  The DuckDB file lives in a temporary directory; PostgreSQL gets a
temporary database, dropped afterwards.
No network traffic beyond the local PostgreSQL.
"""

# SQL here is assembled from constants of this script; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from exwatch.report import aggregate, enrichment
from exwatch.store import Store, ingest_files, open_store

STATUSES = ("success", "connection-refused", "connection-timeout", "tls-error", "io-timeout")
COUNTRIES = ("BE", "NL", "FR", "DE", "US", "GB", "LU", "PL", "IT", "ES", "AT", "CH", "SE", "DK")
SECTORS = ("municipality", "health", "education", "energy", "transport", "unknown", "unknown")


def record(i: int, scan_id: str) -> dict[str, Any]:
    exchange = i % 5 == 0
    return {
        "schema_version": 1,
        "scan_id": scan_id,
        "ip": f"{20 + (i >> 24) % 200}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
        "port": 443,
        "hostname": None,
        "timestamp": f"2026-11-23T17:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
        "duration_ms": 12.5 + i % 100,
        "status": "success" if exchange else STATUSES[i % len(STATUSES)],
        "error": None,
        "exchange": {
            "build": "15.2.1118.7",
            "precision": "su",
            "product": "Exchange Server 2019",
            "cu": "CU12",
            "su": "Nov23SU",
            "eol": False,
            "known": True,
            "sources": ["x-owa-version", "owa-path"],
            "builds_seen": ["15.2.1118.7"],
        }
        if exchange
        else None,
        "cves": {"CVE-2021-26855": "patched", "CVE-2023-21529": "vulnerable"} if exchange else {},
        "tls": {
            "version": "TLSv1.2",
            "subject_cn": "mail.example.com",
            "subject": "CN=mail.example.com",
            "issuer": "CN=R3",
            "not_after": "2027-01-01",
            "sha256": "ab" * 32,
        }
        if exchange
        else None,
        "ntlm": None,
        "headers": {"server": "Microsoft-IIS/10.0"},
        "http_status": 200 if exchange else None,
    }


def _array(values: tuple[str, ...], dialect: str) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"[{quoted}]" if dialect == "duckdb" else f"(ARRAY[{quoted}])"


def generate_enrichment(store: Store, scan_id: str, rows: int) -> None:
    """One enrichment row per number 0..rows-1, the same values on both backends: 30 %
    Exchange, a third of those vulnerable, 14 countries, 7 sectors, 60,000 ASes."""
    d = store.dialect.name
    if d == "duckdb":
        div, source = "//", "range(?) t(i)"
        ts = "TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_microseconds(i)"
    else:
        div, source = "/", "generate_series(0, ? - 1) AS t(i)"
        ts = "TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * INTERVAL '1 microsecond'"
    ip = (
        f"concat(i {div} 16777216 % 200 + 20, '.', i {div} 65536 % 256, '.',"
        f" i {div} 256 % 256, '.', i % 256)"
    )
    vuln = "CASE WHEN i % 10 < 1 THEN {yes} ELSE {no} END"
    yes = _array(("CVE-2021-26855",), d)
    no = "CAST([] AS VARCHAR[])" if d == "duckdb" else "CAST(ARRAY[] AS TEXT[])"
    store.execute(
        "INSERT INTO enrichment (scan_id, ip, port, ts, ip_sort, country, country_source, asn,"
        " sector, status, is_exchange, vulnerable, eol, build, product, cu, vulnerable_cves,"
        " patched_cves, undetermined_cves, cve_ids, profile_id)"
        f" SELECT ?, {ip}, 443, {ts}, lpad(CAST(i AS VARCHAR), 32, '0'),"
        f" {_array(COUNTRIES, d)}[i * 7 % {len(COUNTRIES)} + 1], 'bench',"
        f" i * 13 % 60000, {_array(SECTORS, d)}[i * 3 % {len(SECTORS)} + 1], 'success',"
        " i % 10 < 3, i % 10 < 1, i % 10 = 2,"
        " CASE WHEN i % 10 < 1 THEN '15.1.2507.6' ELSE '15.2.1544.4' END,"
        " 'Exchange Server 2016', 'CU23',"
        f" {vuln.format(yes=yes, no=no)}, {vuln.format(yes=no, no=yes)}, {no}, {yes}, 'bench'"
        f" FROM {source}",
        [scan_id, rows],
    )
    store.execute(
        "UPDATE scans SET answered = ?, enriched = ?,"
        " enrich_generation = coalesce(enrich_generation, 0) + 1 WHERE scan_id = ?",
        [rows, rows, scan_id],
    )


@contextmanager
def target(backend: str, folder: Path, admin: str) -> Iterator[str]:
    if backend == "duckdb":
        yield str(folder / "bench.duckdb")
        return
    name = f"exwatch_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(repeat: int, func: Callable[[], Any]) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def run_backend(backend: str, db: str, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    with open_store(db) as store:
        scan_id = store.start_scan({"bench": True}, scan_id="bench-append")
        spent = 0.0
        for start in range(0, args.rows, args.batch):
            # Building the dicts is the scanner's cost, not the store's: not timed.
            batch = [record(i, scan_id) for i in range(start, min(args.rows, start + args.batch))]
            t0 = time.perf_counter()
            store.append(batch)
            spent += time.perf_counter() - t0
        store.finish_scan(scan_id)
        figures["append rows/s"] = args.rows / spent
        # The real pipeline: enrich the answering rows (offline sources), then report; the
        # rollup is counted while enriching, so the first report is already cheap.
        from exwatch.cli.enrich_cmd import make_enricher

        t0 = time.perf_counter()
        done = enrichment.prepare(store, make_enricher, enrichment.EnrichOptions(), [scan_id])
        figures["enrich rows/s"] = done.rows / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        aggregate.group_counts(store, scan_id, "country")
        figures["first report after enrich s"] = time.perf_counter() - t0
        jsonl = folder / "shard.jsonl"
        if not jsonl.exists():
            with open(jsonl, "w") as handle:
                for i in range(args.ingest_rows):
                    handle.write(json.dumps(record(i, "bench-ingest")) + "\n")
        t0 = time.perf_counter()
        ingest_files(store, [jsonl])
        figures["ingest lines/s"] = args.ingest_rows / (time.perf_counter() - t0)

        store.start_scan({"bench": "report"}, scan_id="bench-report")
        t0 = time.perf_counter()
        generate_enrichment(store, "bench-report", args.rows)
        figures["generate enrichment s"] = time.perf_counter() - t0
        if backend == "postgresql":
            store.execute("ANALYZE")
        scan = "bench-report"
        t0 = time.perf_counter()
        aggregate.group_counts(store, scan, "country")
        figures["by country, cold (builds rollup) s"] = time.perf_counter() - t0
        figures["by country, warm s"] = timed(args.repeat, lambda: aggregate.group_counts(
            store, scan, "country"
        ))[1]  # fmt: skip
        figures["by sector --country BE s"] = timed(args.repeat, lambda: aggregate.group_counts(
            store, scan, "sector", country="BE"
        ))[1]  # fmt: skip
        figures["by cve s"] = timed(
            args.repeat, lambda: aggregate.group_counts(store, scan, "cve")
        )[1]
        figures["headline totals s"] = timed(args.repeat, lambda: aggregate.totals(store, scan))[1]
        figures["freshness check s"] = timed(args.repeat, lambda: enrichment.prepare(
            store, _no_enricher, enrichment.EnrichOptions(), [scan]
        ))[1]  # fmt: skip
    return figures


def _no_enricher(options: enrichment.EnrichOptions) -> enrichment.RecordEnricher:
    raise AssertionError("the bench's enrichment is complete: nothing should be enriched")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--ingest-rows", type=int, default=None, help="default: min(rows, 1M)")
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="duckdb,postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if args.ingest_rows is None:
        args.ingest_rows = min(args.rows, 1_000_000)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="exwatch-store-bench-") as tmp:
        folder = Path(tmp)
        for backend in args.backends.split(","):
            with target(backend, folder, args.pg) as db:
                results[backend] = run_backend(backend, db, args, folder)
    names = list(next(iter(results.values())))
    print(f"{args.rows:,} rows written and reported, {args.ingest_rows:,} lines ingested")
    header = f"{'':<38}" + "".join(f"{b:>14}" for b in results)
    if len(results) == 2:
        header += f"{'pg/duckdb':>11}"
    print(header)
    for name in names:
        values = [results[b][name] for b in results]
        unit_rate = name.endswith("/s")
        line = f"{name:<38}" + "".join(
            f"{v:>14,.0f}" if unit_rate else f"{v:>14.3f}" for v in values
        )
        if len(values) == 2 and values[0]:
            line += f"{values[1] / values[0]:>11.2f}"
        print(line)


if __name__ == "__main__":
    main()
