"""Report speed on both backends over N enriched results (10 M by default), same rows.

Usage: .venv/bin/python bench/report_bench.py [--rows 10000000] [--scans 1] [--repeat 5]
           [--builds 300] [--backends duckdb,postgresql]
           [--pg postgresql://postgres@127.0.0.1/postgres]

Rows are generated inside each database (bench/store_bench.py's generator: the same values
on both) into a throw-away store: a DuckDB file in a temporary directory, a temporary
PostgreSQL database; the Exchange rows then run --builds different builds of builds.csv
(every product line, so patch lag is computed for as many distinct builds as a real census
shows).  Prints, per backend, the first report of a scan (which builds its rollup and its
per-build cells), the per-build cells alone (what a new KEV list costs), then best and median
of the reports a user or the web interface repeats - counts per group with and without their
patch lag, the months-behind distribution, the KEV-only host list, the report by CVE - and
the PostgreSQL/DuckDB ratio.  Nothing touches the network beyond the local PostgreSQL.
"""

# SQL here is assembled from constants of this script and builds.csv; values are bound.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from store_bench import generate_enrichment, target, timed

from exwatch.knowledge.catalogue import default
from exwatch.report import aggregate, lag, rollup, trends
from exwatch.report.cves import cve_report
from exwatch.report.kev import kev_hosts
from exwatch.store import Store, open_store


def spread_builds(store: Store, scan_id: str, count: int) -> None:
    """Give the scan's Exchange rows `count` builds of builds.csv, the same on both backends
    (row number i, kept in ip_sort, picks build i mod count)."""
    rows = default().rows
    step = max(1, len(rows) // count)
    picked = [str(r.build) for r in rows[::step]][:count]
    array = ", ".join(f"'{b}'" for b in picked)
    literal = f"[{array}]" if store.dialect.name == "duckdb" else f"(ARRAY[{array}])"
    store.execute(
        f"UPDATE enrichment SET build = {literal}[CAST(ip_sort AS BIGINT) % {len(picked)} + 1]"
        " WHERE scan_id = ? AND is_exchange",
        [scan_id],
    )
    store.execute(
        "UPDATE scans SET enrich_generation = coalesce(enrich_generation, 0) + 1 WHERE scan_id = ?",
        [scan_id],
    )


def add_results(store: Store, scan_id: str) -> None:
    """A results row behind every enrichment row: host lists join them for the names the
    servers sent."""
    store.execute(
        "INSERT INTO results (scan_id, ip, port, ts, status, is_exchange, vulnerable, build,"
        " hostname, tls_subject_cn, x_feserver, record) SELECT scan_id, ip, port, ts, status,"
        " is_exchange, vulnerable, build, 'mail.example.com', 'mail.example.com', 'EXCH01',"
        " '{}' FROM enrichment WHERE scan_id = ?",
        [scan_id],
    )


def bench(store: Store, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    start = time.perf_counter()
    for s in range(args.scans):
        store.start_scan({"bench": s}, scan_id=f"bench-{s}")
        generate_enrichment(store, f"bench-{s}", args.rows // args.scans)
        spread_builds(store, f"bench-{s}", args.builds)
        add_results(store, f"bench-{s}")
    if store.dialect.name == "postgresql":
        store.execute("ANALYZE")
    took = time.perf_counter() - start
    out["generate rows"] = (took, took)
    scan = aggregate.resolve_scan(store, None)
    start = time.perf_counter()
    rows = aggregate.group_counts(store, scan, "country")
    cold = time.perf_counter() - start
    out["by country, first (builds rollups)"] = (cold, cold)
    assert sum(r.hosts for r in rows) == args.rows // args.scans

    def new_kev_list() -> None:
        store.execute("UPDATE rollup_builds_state SET kev = '' WHERE scan_id = ?", [scan])
        aggregate.totals(store, scan)

    out["per-build cells alone (new KEV list)"] = timed(1, new_kev_list)
    out["lag of every distinct build (cold)"] = timed(1, lambda: _cold_lags(store, scan))
    out["by country, counts only"] = timed(
        args.repeat, lambda: rollup.merged(store, scan, "country")
    )
    out["by asn, counts only"] = timed(args.repeat, lambda: rollup.merged(store, scan, "asn"))
    out["by country"] = timed(args.repeat, lambda: aggregate.group_counts(store, scan, "country"))
    out["by sector"] = timed(args.repeat, lambda: aggregate.group_counts(store, scan, "sector"))
    out["by asn, top 50"] = timed(
        args.repeat, lambda: aggregate.group_counts(store, scan, "asn", limit=50)
    )
    out["by asn, all"] = timed(args.repeat, lambda: aggregate.group_counts(store, scan, "asn"))
    out["by version"] = timed(args.repeat, lambda: aggregate.group_counts(store, scan, "version"))
    out["by cve (KEV, CVSS, fixed builds)"] = timed(args.repeat, lambda: cve_report(store, scan))
    out["months-behind distribution"] = timed(
        args.repeat, lambda: aggregate.months_distribution(store, scan)
    )
    out["KEV hosts, first 500"] = timed(args.repeat, lambda: kev_hosts(store, scan, limit=500))
    out["KEV hosts, all"] = timed(args.repeat, lambda: kev_hosts(store, scan))
    out["vulnerable hosts, first 500 (before)"] = timed(
        args.repeat, lambda: aggregate.exchange_hosts(store, scan, limit=500)
    )
    out["headline totals"] = timed(args.repeat, lambda: aggregate.totals(store, scan))
    out["by scan (trend, all scans)"] = timed(args.repeat, lambda: trends.scan_trend(store))
    return out


def _cold_lags(store: Store, scan: str) -> None:
    """What a fresh process pays once: the lag of every build the scan shows."""
    lag.build_lag.cache_clear()
    lag.catalogue_as_of.cache_clear()
    day = aggregate.scan_day(store, scan)
    for cells in rollup.build_cells(store, scan, "country").values():
        for build, *_ in cells:
            lag.build_lag(build, day)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--scans", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--builds", type=int, default=300)
    parser.add_argument("--backends", default="duckdb,postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    results: dict[str, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="exwatch-report-bench-") as tmp:
        for backend in args.backends.split(","):
            with target(backend, Path(tmp), args.pg) as db, open_store(db) as store:
                results[backend] = bench(store, args)
                # Printed before the throw-away store is dropped, so that figures survive a
                # cleanup that hangs (a shared PostgreSQL server can block DROP DATABASE).
                show(results, args)


def show(results: dict[str, dict[str, tuple[float, float]]], args: argparse.Namespace) -> None:
    print(
        f"{args.rows:,} enriched results in {args.scans} scan(s), Exchange rows on"
        f" {args.builds} builds; seconds, best / median"
    )
    print(f"{'':<40}" + "".join(f"{b:>22}" for b in results) + f"{'pg/duckdb':>11}")
    for name in next(iter(results.values())):
        values = [results[b][name] for b in results]
        line = f"{name:<40}" + "".join(f"{best:>10.3f} / {med:<9.3f}" for best, med in values)
        if len(values) == 2 and values[0][1] > 0:
            line += f"{values[1][1] / values[0][1]:>11.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
