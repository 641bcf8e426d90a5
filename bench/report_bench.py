"""Report speed on both backends over N enriched results (10 M by default), same rows.

Usage: .venv/bin/python bench/report_bench.py [--rows 10000000] [--scans 1] [--repeat 5]
           [--backends duckdb,postgresql] [--pg postgresql://postgres@127.0.0.1/postgres]

Rows are generated inside each database (bench/store_bench.py's generator: the same values
on both) into a throw-away store: a DuckDB file in a temporary directory, a temporary
PostgreSQL database.  Prints, per backend, the first report of a scan (which builds its
rollup), then best and median of the reports a user or the web interface repeats, and the
PostgreSQL/DuckDB ratio.  Nothing touches the network beyond the local PostgreSQL.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from store_bench import generate_enrichment, target, timed

from exwatch.report import aggregate, trends
from exwatch.store import Store, open_store


def bench(store: Store, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    start = time.perf_counter()
    for s in range(args.scans):
        store.start_scan({"bench": s}, scan_id=f"bench-{s}")
        generate_enrichment(store, f"bench-{s}", args.rows // args.scans)
    if store.dialect.name == "postgresql":
        store.execute("ANALYZE")
    took = time.perf_counter() - start
    out["generate rows"] = (took, took)
    scan = aggregate.resolve_scan(store, None)
    start = time.perf_counter()
    rows = aggregate.group_counts(store, scan, "country")
    cold = time.perf_counter() - start
    out["by country, first (builds rollup)"] = (cold, cold)
    assert sum(r.hosts for r in rows) == args.rows // args.scans
    out["by country"] = timed(args.repeat, lambda: aggregate.group_counts(store, scan, "country"))
    out["by sector"] = timed(args.repeat, lambda: aggregate.group_counts(store, scan, "sector"))
    out["by asn, top 50"] = timed(
        args.repeat, lambda: aggregate.group_counts(store, scan, "asn", limit=50)
    )
    out["by cve"] = timed(args.repeat, lambda: aggregate.group_counts(store, scan, "cve"))
    out["headline totals"] = timed(args.repeat, lambda: aggregate.totals(store, scan))
    out["by scan (trend, all scans)"] = timed(args.repeat, lambda: trends.scan_trend(store))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--scans", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="duckdb,postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    results: dict[str, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="exwatch-report-bench-") as tmp:
        for backend in args.backends.split(","):
            with target(backend, Path(tmp), args.pg) as db, open_store(db) as store:
                results[backend] = bench(store, args)
    print(f"{args.rows:,} enriched results in {args.scans} scan(s); seconds, best / median")
    print(f"{'':<36}" + "".join(f"{b:>22}" for b in results) + f"{'pg/duckdb':>11}")
    for name in next(iter(results.values())):
        values = [results[b][name] for b in results]
        line = f"{name:<36}" + "".join(f"{best:>10.3f} / {med:<9.3f}" for best, med in values)
        if len(values) == 2 and values[0][1] > 0:
            line += f"{values[1][1] / values[0][1]:>11.2f}"
        print(line)


if __name__ == "__main__":
    main()
