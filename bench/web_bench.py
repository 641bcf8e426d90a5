"""Web interface speed on both backends over N results (10 M by default), same rows.

Usage: .venv/bin/python bench/web_bench.py [--rows 10000000] [--repeat 20]
           [--backends duckdb,postgresql] [--pg postgresql://postgres@127.0.0.1/postgres]

Rows are generated inside each database (two censuses of the same N/2 addresses: 60 %
answering, 30 % Exchange, 50,000 organisations, 60,000 ASes, 14 countries; the second census
has half the first's vulnerable hosts patched) into a throw-away store.  Then `exwatch serve`
runs as its own process on a free loopback port, and this script fetches every page over
HTTP: once cold (the first view of a page, which may build the scan's drill-down counts
or a diff), then --repeat times; it prints p50 and p95 per page and backend and the
PostgreSQL/DuckDB ratio.  Nothing leaves the machine.
"""

# SQL here is assembled from constants of this script; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from store_bench import target

from exwatch.store import Store, open_store

COUNTRIES = ("BE", "NL", "FR", "DE", "US", "GB", "LU", "PL", "IT", "ES", "AT", "CH", "SE", "DK")
SECTORS = ("municipality", "health", "education", "energy", "transport", "unknown", "unknown")
BUILDS = ("15.1.2507.6", "15.2.1544.4", "15.2.1748.24", "15.1.2507.39", "14.3.513.0")


def _array(values: tuple[str, ...], dialect: str) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"[{quoted}]" if dialect == "duckdb" else f"(ARRAY[{quoted}])"


def generate(store: Store, scan_id: str, rows: int, patched_share: int) -> None:
    """`rows` results of one census and the enrichment of its answering ones."""
    d = store.dialect.name
    if d == "duckdb":
        div, source = "//", "range(?) t(i)"
        ts = "TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_microseconds(i)"
        empty = "CAST([] AS VARCHAR[])"
    else:
        div, source = "/", "generate_series(0, ? - 1) AS t(i)"
        ts = "TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * INTERVAL '1 microsecond'"
        empty = "CAST(ARRAY[] AS TEXT[])"
    ip = (
        f"concat(i {div} 16777216 % 200 + 20, '.', i {div} 65536 % 256, '.',"
        f" i {div} 256 % 256, '.', i % 256)"
    )
    # vulnerable: i % 10 = 0, fewer in the later census (patched_share of them patched)
    vuln = f"(i % 10 = 0 AND i % 100 >= {patched_share})"
    cves = _array(("CVE-2021-26855", "CVE-2021-34473"), d)
    build = f"{_array(BUILDS, d)}[CASE WHEN {vuln} THEN 1 ELSE i % 4 + 2 END]"
    exchange = "(i % 10 < 3)"
    success = "(i % 10 < 6)"
    host = "CASE WHEN i % 3 = 0 THEN concat('mail', i, '.example', i % 1000, '.test') END"
    store.execute(
        "INSERT INTO results (scan_id, ip, port, hostname, ts, duration_ms, status, error,"
        " is_exchange, build, precision, product, cu, su, eol, known, sources, vulnerable,"
        " vulnerable_cves, patched_cves, undetermined_cves, cve_ids, http_status, server,"
        " tls_subject_cn, ntlm_netbios_computer, record)"
        f" SELECT ?, {ip}, 443, {host}, {ts}, 12.5,"
        f" CASE WHEN {success} THEN 'success' ELSE 'connection-timeout' END,"
        f" CASE WHEN {success} THEN NULL ELSE 'timed out' END, {exchange},"
        f" CASE WHEN {exchange} THEN {build} END, 'su', 'Exchange Server 2016', 'CU23', NULL,"
        f" {exchange} AND i % 10 = 2, TRUE, {_array(('x-owa-version',), d)},"
        f" {exchange} AND {vuln}, CASE WHEN {exchange} AND {vuln} THEN {cves} ELSE {empty} END,"
        f" CASE WHEN {exchange} AND NOT {vuln} THEN {cves} ELSE {empty} END, {empty},"
        f" CASE WHEN {exchange} THEN {cves} ELSE {empty} END, 200, 'Microsoft-IIS/10.0',"
        f" CASE WHEN {exchange} THEN concat('mail', i, '.example.test') END,"
        f" CASE WHEN {exchange} THEN concat('MBX', i % 100) END,"
        ' CAST(concat(\'{"ip":"\', ' + ip + ', \'","port":443,"status":"success",'
        '"exchange":{"build":"\', ' + build + ', \'"},"cves":{},"headers":'
        '{"server":"Microsoft-IIS/10.0"}}\') AS JSON)'
        f" FROM {source}",
        [scan_id, rows],
    )
    store.execute(
        "INSERT INTO enrichment (scan_id, ip, port, ts, ip_sort, country, country_source, asn,"
        " as_name, organisation, sector, status, is_exchange, vulnerable, eol, build, product,"
        " cu, vulnerable_cves, patched_cves, undetermined_cves, cve_ids, profile_id)"
        f" SELECT ?, {ip}, 443, {ts}, lpad(CAST(i AS VARCHAR), 32, '0'),"
        f" {_array(COUNTRIES, d)}[i * 7 % {len(COUNTRIES)} + 1], 'bench', i * 13 % 60000,"
        " concat('AS-NAME-', i * 13 % 60000),"
        " CASE WHEN i % 4 = 0 THEN NULL ELSE concat('Organisation ', i * 31 % 50000) END,"
        f" {_array(SECTORS, d)}[i * 3 % {len(SECTORS)} + 1], 'success', {exchange},"
        f" {exchange} AND {vuln}, {exchange} AND i % 10 = 2,"
        f" CASE WHEN {exchange} THEN {build} END, 'Exchange Server 2016', 'CU23',"
        f" CASE WHEN {exchange} AND {vuln} THEN {cves} ELSE {empty} END, {empty}, {empty},"
        f" CASE WHEN {exchange} THEN {cves} ELSE {empty} END, 'bench'"
        f" FROM {source} WHERE {success}",
        [scan_id, rows],
    )
    answered = int(store.scalar("SELECT count(*) FROM enrichment WHERE scan_id = ?", [scan_id]))
    store.execute(
        "UPDATE scans SET answered = ?, enriched = ?, status = 'finished',"
        " enrich_generation = coalesce(enrich_generation, 0) + 1 WHERE scan_id = ?",
        [answered, answered, scan_id],
    )
    store.execute(
        "UPDATE scan_parts SET recorded = ?, targets = ?, status = 'finished' WHERE scan_id = ?",
        [rows, rows, scan_id],
    )


def pages(scans: list[str]) -> dict[str, str]:
    a, b = scans
    return {
        "overview": f"/?scan={b}",
        "countries": f"/countries?scan={b}",
        "country BE by AS": f"/countries/BE?scan={b}&by=asn",
        "country BE by sector": f"/countries/BE?scan={b}&by=sector",
        "organisations of a sector": f"/countries/BE/sector/health?scan={b}",
        "organisations of an AS": f"/countries/BE/asn/2?scan={b}",
        "hosts of an organisation": f"/hosts?scan={b}&country=BE&organisation=Organisation+7",
        "hosts of a country, page 1": f"/hosts?scan={b}&country=BE",
        "hosts of a country, page 1000": f"/hosts?scan={b}&country=BE&page=1000",
        "hosts of a country by build": f"/hosts?scan={b}&country=BE&sort=build&dir=desc",
        "hosts of a country, KEV, filtered": f"/hosts?scan={b}&country=NL&show=kev&q=20.1",
        "hosts of a CVE": f"/hosts?scan={b}&cve=CVE-2021-26855&show=vulnerable",
        "hosts CSV download": f"/hosts?scan={b}&country=BE&format=csv",
        "host page": "/hosts/20.0.1.10",
        "scans": "/scans",
        "scan progress": f"/scans/{b}",
        "diff (groups + changed hosts)": f"/diff?a={a}&b={b}",
        "diff, changed hosts page 100": f"/diff?a={a}&b={b}&page=100",
        "CVEs": f"/cves?scan={b}",
        "CVE page": f"/cves/CVE-2021-26855?scan={b}",
        "search: address": "/api/search?q=20.0.1.10",
        "search: network /16": f"/hosts?scan={b}&cidr=20.1.0.0/16&show=all",
        "search: host name": f"/search?scan={b}&q=mail3000",
        "search: organisation": f"/search?scan={b}&q=Organisation+4999",
        "search: build": f"/hosts?scan={b}&build=15.2.1544.4",
        "API: hosts JSON": f"/api/hosts?scan={b}&country=FR&per_page=100",
        "notifications": "/notifications",
    }


def fetch(base: str, path: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(base + path, timeout=600) as response:  # noqa: S310 - loopback
        response.read()
        assert response.status == 200, path
    return time.perf_counter() - start


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_backend(db: str, args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    out: dict[str, tuple[float, float, float]] = {}
    half = args.rows // 2
    t0 = time.perf_counter()
    with open_store(db) as store:
        scans = []
        for k, patched in enumerate((0, 50)):
            scan_id = f"census-{k + 1}"
            store.start_scan({"bench": k}, scan_id=scan_id)
            generate(store, scan_id, half, patched)
            scans.append(scan_id)
        if store.dialect.name == "postgresql":
            store.execute("ANALYZE")
    took = time.perf_counter() - t0
    out["generate rows"] = (took, took, took)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "exwatch", "serve", "--db", db, "--port", str(port),
         "--no-access-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        while True:
            try:
                fetch(base, "/api/scans")
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - t0 > 600:
                    raise RuntimeError(server.stderr.read() if server.stderr else "") from None
                time.sleep(0.2)
        out["server up"] = (time.perf_counter() - t0,) * 3
        for name, path in pages(scans).items():
            cold = fetch(base, path)
            times = sorted(fetch(base, path) for _ in range(args.repeat))
            p95 = times[max(0, round(0.95 * len(times)) - 1)]
            out[name] = (cold, statistics.median(times), p95)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--backends", default="duckdb,postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    results: dict[str, dict[str, tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="exwatch-web-bench-") as tmp:
        for backend in args.backends.split(","):
            with target(backend, Path(tmp), args.pg) as db:
                results[backend] = run_backend(db, args)
                print(f"{backend} done", file=sys.stderr, flush=True)
    print(f"{args.rows:,} results in 2 censuses; seconds: first view / p50 / p95 of {args.repeat}")
    print(f"{'':<36}" + "".join(f"{b:>26}" for b in results) + f"{'pg/duckdb p95':>15}")
    for name in next(iter(results.values())):
        values = [results[b][name] for b in results]
        line = f"{name:<36}" + "".join(f"{c:>8.3f} /{m:>7.3f} /{p:>7.3f}" for c, m, p in values)
        if len(values) == 2 and values[0][2] > 0:
            line += f"{values[1][2] / values[0][2]:>15.2f}"
        print(line)
    worst = {b: max(v[2] for k, v in r.items() if k not in ("generate rows", "server up"))
             for b, r in results.items()}  # fmt: skip
    print("slowest page p95: " + ", ".join(f"{b} {w * 1000:.0f} ms" for b, w in worst.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
