"""Report speed: per-country counts over N synthetic enriched results in DuckDB.

Usage: .venv/bin/python bench/report_bench.py [--rows 10000000] [--scans 1] [--repeat 5]
Rows are generated inside DuckDB with range() into a throw-away store in a temporary
directory (deleted afterwards); nothing touches the network.  Prints best and median times.
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, paths) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exwatch.report import aggregate, trends
from exwatch.report.enrichment import ensure_table
from exwatch.store import Store

COUNTRIES = "['BE','NL','FR','DE','US','GB','LU','PL','IT','ES','AT','CH','SE','DK','CZ','IE']"
SECTORS = "['municipality','health','education','energy','transport','unknown','unknown','unknown']"


def generate(store: Store, rows: int, scans: int) -> None:
    con = store.connection
    ensure_table(con)
    per_scan = rows // scans
    for s in range(scans):
        scan_id = f"bench-{s}"
        con.execute(
            "INSERT INTO scans (scan_id, origin, status, started_at)"
            " VALUES (?, 'ingest', 'ingested', TIMESTAMPTZ '2026-01-01 00:00:00+00' + ?"
            " * INTERVAL 7 DAY)",
            [scan_id, s],
        )
        # One row per answering address; 30 % Exchange, a third of those vulnerable.
        con.execute(
            f"""
            INSERT INTO enrichment (scan_id, ip, port, ts, country, country_source, asn, sector,
                status, is_exchange, vulnerable, eol, build, vulnerable_cves, cves)
            SELECT $scan, CAST(i // 16777216 % 223 + 1 AS VARCHAR) || '.' ||
                       CAST(i // 65536 % 256 AS VARCHAR) || '.' ||
                       CAST(i // 256 % 256 AS VARCHAR) || '.' || CAST(i % 256 AS VARCHAR),
                   443,
                   TIMESTAMPTZ '2026-01-01 00:00:00+00' + $s * INTERVAL 7 DAY
                       + to_microseconds(i),
                   {COUNTRIES}[CAST(hash(i) % 16 + 1 AS BIGINT)],
                   'iptocc (RIR registration, bench)',
                   CAST(hash(i * 7) % 60000 AS BIGINT),
                   {SECTORS}[CAST(hash(i * 3) % 8 + 1 AS BIGINT)],
                   'success', i % 10 < 3, i % 10 < 1, i % 10 = 2,
                   CASE WHEN i % 10 < 1 THEN '15.1.2507.6' ELSE '15.2.1544.4' END,
                   CASE WHEN i % 10 < 1 THEN ['CVE-2021-26855'] ELSE [] END,
                   NULL
            FROM range($n) t(i)
            """,
            {"scan": scan_id, "s": s, "n": per_scan},
        )


def timed(label: str, repeat: int, func: Callable[[], Any]) -> None:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    print(f"{label:<42} best {min(times):.3f} s   median {statistics.median(times):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--scans", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="exwatch-report-bench-") as tmp:
        path = Path(tmp) / "bench.duckdb"
        with Store.open(path) as store:
            start = time.perf_counter()
            generate(store, args.rows, args.scans)
            print(
                f"generated {args.rows:,} enriched results in {args.scans} scan(s)"
                f" in {time.perf_counter() - start:.1f} s"
            )
            con = store.connection
            scan = aggregate.resolve_scan(con, None)
            rows = aggregate.group_counts(con, scan, "country")
            print(
                "per-country rows:", len(rows), " hosts in latest scan:",
                f"{sum(r.hosts for r in rows):,}",
            )  # fmt: skip
            timed("report --by country (latest scan)", args.repeat,
                  lambda: aggregate.group_counts(con, scan, "country"))  # fmt: skip
            timed("report --by sector (latest scan)", args.repeat,
                  lambda: aggregate.group_counts(con, scan, "sector"))  # fmt: skip
            timed("report --by asn (latest scan, top 50)", args.repeat,
                  lambda: aggregate.group_counts(con, scan, "asn", limit=50))  # fmt: skip
            timed("headline totals (latest scan)", args.repeat,
                  lambda: aggregate.totals(con, scan))  # fmt: skip
            timed("report --by scan (trend, all scans)", args.repeat,
                  lambda: trends.scan_trend(con))  # fmt: skip
        print(f"store size {path.stat().st_size / 1e6:.0f} MB (deleted)")


if __name__ == "__main__":
    main()
