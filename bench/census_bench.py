"""A census on Celery workers against `exwatch scan` on the same lab, in one run.

Usage: .venv/bin/python bench/census_bench.py [--hosts 3000] [--timeout 2] [--task-size 512]
           [--pool 2] [--broker redis://127.0.0.1:6379/9] [--pg postgresql://...] [--runs 2]
           [--store-rows 200000] [--report-rows 0]

For W = 1 and 2 (each on its own core of the machine, taskset): `exwatch scan --workers W`
writing to PostgreSQL, then a census of the same lab with W `exwatch worker` processes
(--concurrency --pool scanning processes each) writing to PostgreSQL, with the workers
started and ready before the census is submitted.  Rates are hosts recorded per second
while scanning: the scan's own clock (first target to last record), the census's from its
first task's start to its last task's end (store times), so process start-up counts in
neither.  Prints both, and the census/scan ratio (the cost of the queue: tasks, claims,
fenced writes, per-task tails).  Scans and censuses alternate; each figure is the best
of --runs.

Then, unless --store-rows 0, bench/store_bench.py and bench/report_bench.py on both
backends with the same rows (--store-rows / --report-rows; 10 M when asked): PostgreSQL's
write and report speed against DuckDB's.

Everything stays on this machine: the lab on 127.x.y.z, Redis, PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from exwatch.lab import Lab
from exwatch.scan.job import ScanJob, execute

BENCH = Path(__file__).resolve().parent
EXWATCH = [sys.executable, "-m", "exwatch"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _schema_url(database: str) -> str:
    schema = f"s_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    return f"{database}?options={quote(f'-csearch_path={schema}')}"


def _cores(workers: int) -> list[int]:
    available = sorted(os.sched_getaffinity(0))
    return [available[i % len(available)] for i in range(workers)]


def run_scan(lab: Lab, args: argparse.Namespace, workers: int, db: str) -> dict[str, Any]:
    """`exwatch scan --workers W` (in this process, pinned to W cores) into PostgreSQL."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(_cores(workers)))
    try:
        summary = execute(
            ScanJob(
                specs=list(lab.cidr),
                port=lab.port,
                timeout=args.timeout,
                concurrency=500 * workers,
                allow_private=True,
                db=db,
                workers=workers,
            )
        )
    finally:
        os.sched_setaffinity(0, before)
    tally = summary.tally
    return {
        "hosts": tally.done,
        "seconds": tally.elapsed,
        "hosts_per_s": tally.rate,
        **steady_rate(db, summary.scan_id),
    }


def _wait_ready(logs: list[Path], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while not all(" ready." in log.read_text(errors="replace") for log in logs):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise SystemExit(
                "a worker did not start:\n" + "\n".join(log.read_text() for log in logs)
            )
        time.sleep(0.1)


def run_census(
    lab: Lab, args: argparse.Namespace, workers: int, db: str, folder: Path
) -> dict[str, Any]:
    """W `exwatch worker` processes (one core each), ready, then a census of the lab."""
    from exwatch.census.status import census_status

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    for w, core in enumerate(_cores(workers)):
        log = folder / f"worker-{queue}-{w}.log"
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [
                    "taskset", "-c", str(core), *EXWATCH, "worker", "--broker", args.broker,
                    "--db", db, "--queue", queue, "--concurrency", str(args.pool),
                    "--task-deadline", "120", "--name", f"{queue}-{w}@bench",
                    "--loglevel", "info",
                ],
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )  # fmt: skip
    try:
        _wait_ready(logs, procs)
        scan_id = f"bench-{queue}"
        subprocess.run(
            [
                *EXWATCH, "census", "submit", *lab.cidr, "--port", str(lab.port),
                "--allow-private", "--timeout", str(args.timeout), "--broker", args.broker,
                "--db", db, "--queue", queue, "--scan-id", scan_id,
                "--task-size", str(args.task_size), "--task-deadline", "120",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        while True:
            st = census_status(db, scan_id)
            if st.status not in ("queued", "running"):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    if st.status != "finished" or not st.elapsed:
        raise SystemExit(f"census {scan_id} ended {st.status}: {st.to_json()}")
    return {
        "hosts": st.scanned,
        "seconds": st.elapsed,
        "hosts_per_s": st.scanned / st.elapsed,
        "tasks": st.tasks,
        **steady_rate(db, scan_id),
    }


def steady_rate(db: str, scan_id: str, share: float = 0.95) -> dict[str, float]:
    """Hosts per second until `share` of the hosts were done, from the stored start times
    and durations: the lab's slowest hostile hosts (slow drip up to the host timeout) end
    every run alike, and would otherwise hide what the scanners themselves do."""
    from exwatch.store import open_store

    with open_store(db, read_only=True, create=False) as store:
        rows = store.query(
            "SELECT extract(epoch FROM ts), duration_ms FROM results WHERE scan_id = ?",
            [scan_id],
        )
    starts = [float(t) for t, _ in rows]
    ends = sorted(float(t) + float(d or 0) / 1000 for t, d in rows)
    count = max(1, int(len(ends) * share))
    seconds = ends[count - 1] - min(starts)
    return {"steady_hosts_per_s": count / seconds, "steady_seconds": seconds}


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return max(runs, key=lambda r: float(r["steady_hosts_per_s"]))


def census_writes(database: str, rows: int, batch: int = 2000) -> dict[str, float]:
    """Rows per second into PostgreSQL, same records, same batches: the scanner's append
    against the census's fenced write (task lock, attempt check, progress counters)."""
    sys.path.insert(0, str(BENCH))
    from store_bench import record

    from exwatch.store import open_store
    from exwatch.store.census import Census, CensusBook, Claim

    out: dict[str, float] = {}
    for path in ("scan append", "census write"):
        with open_store(_schema_url(database)) as store:
            book = CensusBook(store)
            census = Census(
                scan_id="w", queue="q", broker="-", settings={}, status="queued",
                targets=rows, tasks=1, task_size=rows, deadline=600, max_attempts=3, rate=None,
            )  # fmt: skip
            with store.transaction():
                book.create(census, [(0, rows)], rows)
                store.start_scan({}, scan_id="w", targets=rows)
            claim = book.claim("w", 0, "bench:1")
            assert isinstance(claim, Claim)
            started = time.perf_counter()
            for first in range(0, rows, batch):
                records = [record(i, "w") for i in range(first, min(first + batch, rows))]
                if path == "scan append":
                    store.append(records, scan_id="w")
                else:
                    book.write("w", 0, claim.attempt, records, 0, 0)
            out[path] = rows / (time.perf_counter() - started)
    return out


def store_benches(args: argparse.Namespace) -> None:
    for script, rows in (
        ("store_bench.py", args.store_rows),
        ("report_bench.py", args.report_rows),
    ):
        if rows <= 0:
            continue
        print(f"\n== {script} --rows {rows:,} (PostgreSQL against DuckDB, same rows)", flush=True)
        subprocess.run(
            [sys.executable, str(BENCH / script), "--rows", str(rows), "--pg", args.pg],
            check=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--task-size", type=int, default=512)
    parser.add_argument("--pool", type=int, default=2, help="scanning processes per worker")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--store-rows", type=int, default=200_000)
    parser.add_argument("--report-rows", type=int, default=0)
    parser.add_argument("--write-rows", type=int, default=100_000)
    args = parser.parse_args()

    name = f"exwatch_census_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    database = f"{args.pg.rsplit('/', 1)[0]}/{name}"
    results: dict[str, Any] = {}
    writes: dict[str, float] = {}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="exwatch-census-bench-") as tmp,
            Lab(hosts=args.hosts, port=_free_port(), seed=args.seed) as lab,
        ):
            for workers in (1, 2):
                scans: list[dict[str, Any]] = []
                censuses: list[dict[str, Any]] = []
                for _ in range(args.runs):  # interleaved: a busy moment hits both alike
                    scans.append(run_scan(lab, args, workers, _schema_url(database)))
                    censuses.append(
                        run_census(lab, args, workers, _schema_url(database), Path(tmp))
                    )
                results[f"{workers} worker(s)"] = {"scan": best(scans), "census": best(censuses)}
        if args.write_rows > 0:
            writes = census_writes(database, args.write_rows)
    finally:
        with psycopg.connect(args.pg, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(
        f"lab {args.hosts} hosts, timeout {args.timeout:g} s, task size {args.task_size},"
        f" {args.pool} scanning processes per worker, best of {args.runs}; PostgreSQL store"
    )
    print("hosts/s until 95 % of the hosts were done (all hosts, slowest included, in brackets)")
    print(f"{'':12} {'scan':>14} {'census':>14} {'census/scan':>12} {'tasks':>6}")
    for key, pair in results.items():
        scan, census = pair["scan"], pair["census"]
        ratio = census["steady_hosts_per_s"] / scan["steady_hosts_per_s"]
        print(
            f"{key:12} {scan['steady_hosts_per_s']:6,.0f} ({scan['hosts_per_s']:5,.0f})"
            f" {census['steady_hosts_per_s']:6,.0f} ({census['hosts_per_s']:5,.0f})"
            f" {ratio:12.2f} {census['tasks']:6}"
        )
    if args.write_rows > 0:
        print(
            f"writes to PostgreSQL, {args.write_rows:,} records in batches of 2,000:"
            f" scan append {writes['scan append']:,.0f} rows/s, census fenced write"
            f" {writes['census write']:,.0f} rows/s"
            f" ({writes['census write'] / writes['scan append']:.2f})"
        )
    print(json.dumps(results, indent=2, default=float))
    store_benches(args)


if __name__ == "__main__":
    main()
