"""What the opt-in checks cost: the same lab scanned without and with `--check`, in one
invocation, with the requests per host nginx logged for each scan; and with `--report N`,
what their report costs on a store of N checked hosts next to the ordinary report.

    .venv/bin/python bench/checks_bench.py [--hosts 1000] [--checks all-safe] [--runs 2]
    .venv/bin/python bench/checks_bench.py --report 100000 [--db postgresql://...]

Scans: wall time, hosts/s, scanner CPU seconds, requests per answering host by ground-truth
kind (on-prem Exchange, other answering hosts), and the ratio of the checked scan to the
passive one.  nginx (one worker) serves the lab; only 127.x.y.z is contacted.
Report: a lab's checked records copied to N addresses of 10.0.0.0/8 (never contacted: they
only go into the store), ingested and enriched, then `report --view compromise --by
country` twice (the first builds host_checks from the records, the second reads it) next
to `report --by country`, in the same store.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exwatch.lab import Lab

EXWATCH = [sys.executable, "-m", "exwatch"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _scan(lab: Lab, work: Path, checks: str | None) -> tuple[float, float, Path]:
    out = work / f"scan-{checks or 'passive'}-{time.monotonic_ns()}.jsonl"
    args = [
        *EXWATCH, "scan", *lab.cidr, "--port", str(lab.port), "--allow-private",
        "--timeout", "3", "--workers", "1", "--no-db", "-o", str(out), "-q",
    ]  # fmt: skip
    if checks:
        args += ["--check", checks]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(args, check=True, timeout=3600, capture_output=True)
    return time.perf_counter() - t0, _children_cpu() - cpu0, out


def _requests_per_host(log: Path, truth: dict[str, dict[str, object]]) -> dict[str, float]:
    per_ip: collections.Counter[str] = collections.Counter()
    for line in log.read_text("utf-8").splitlines():
        per_ip[line.split(" ", 1)[0]] += 1
    kinds: dict[str, list[int]] = {"exchange": [], "other answering": []}
    for ip, t in truth.items():
        if t["expected_status"] != "success":
            continue
        kinds["exchange" if t["kind"] == "exchange" else "other answering"].append(per_ip[ip])
    return {k: sum(v) / len(v) for k, v in kinds.items() if v}


def _timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([*EXWATCH, *args], check=True, timeout=3600, capture_output=True)
    return time.perf_counter() - t0


def report_bench(n: int, db: str | None) -> int:
    import ipaddress

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with Lab(
            hosts=300, port=_free_port(), seed=3, base="127.24.0.1",
            workdir=work / "lab", backend="nginx",
        ) as lab:  # fmt: skip
            _, _, out = _scan(lab, work, "all-safe")
        checked = [
            r
            for line in out.read_text("utf-8").splitlines()
            if ((r := json.loads(line)).get("checks") or {}).get("ran")
        ]
        records = work / "many.jsonl"
        with records.open("w", encoding="utf-8") as handle:
            base = int(ipaddress.ip_address("10.0.0.1"))
            for i in range(n):
                r = dict(checked[i % len(checked)])
                r["ip"], r["scan_id"] = str(ipaddress.ip_address(base + i)), "bench-checks"
                handle.write(json.dumps(r) + "\n")
        target = db or str(work / "bench.duckdb")
        ingest = _timed(["ingest", "--db", target, str(records)])
        enrich = _timed(["enrich", "--db", target])
        counts = _timed(["report", "--db", target, "--by", "country", "--format", "json"])
        view = ["report", "--db", target, "--view", "compromise", "--format", "json"]
        first = _timed(view)
        second = _timed(view)
        cve = _timed([*view, "--by", "cve"])
    print(f"store: {'PostgreSQL' if db else 'DuckDB'}, {n:,} checked Exchange hosts")
    print(f"ingest {ingest:.1f} s, enrich {enrich:.1f} s")
    print(f"report --by country (rollup)                  {counts:6.2f} s")
    print(f"report --view compromise, first (builds rows)  {first:6.2f} s")
    print(f"report --view compromise, again               {second:6.2f} s")
    print(f"report --view compromise --by cve             {cve:6.2f} s")
    print(f"ratio compromise view (again) / counts report: {second / counts:.2f}x")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--checks", default="all-safe")
    ap.add_argument("--runs", type=int, default=2, help="scans of each kind (best is shown)")
    ap.add_argument("--report", type=int, metavar="N", help="measure the report on N hosts")
    ap.add_argument("--db", help="with --report: a PostgreSQL URL instead of a DuckDB file")
    args = ap.parse_args()
    if args.report:
        return report_bench(args.report, args.db)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with Lab(
            hosts=args.hosts, port=_free_port(), seed=3, base="127.24.0.1",
            workdir=work / "lab", backend="nginx", access_log=True,
        ) as lab:  # fmt: skip
            answering = sum(
                1 for t in lab.ground_truth.values() if t["expected_status"] == "success"
            )
            rows = {}
            for label, checks in (("passive", None), (f"--check {args.checks}", args.checks)):
                best = None
                for _ in range(args.runs):
                    lab.access_log_path.write_text("", "utf-8")
                    wall, cpu, out = _scan(lab, work, checks)
                    if best is None or wall < best[0]:
                        per_host = _requests_per_host(lab.access_log_path, lab.ground_truth)
                        checked = sum(
                            1
                            for line in out.read_text("utf-8").splitlines()
                            if (json.loads(line).get("checks") or {}).get("ran")
                        )
                        best = (wall, cpu, per_host, checked)
                assert best is not None
                rows[label] = best
    print(f"lab: {args.hosts} hosts, {answering} answering; best of {args.runs} runs each")
    print(f"{'scan':<22}{'wall s':>8}{'hosts/s':>9}{'CPU s':>8}  requests/host by kind")
    for label, (wall, cpu, per_host, checked) in rows.items():
        kinds = ", ".join(f"{k} {v:.1f}" for k, v in per_host.items())
        note = f"; checks ran on {checked} hosts" if checked else ""
        print(f"{label:<22}{wall:>8.1f}{args.hosts / wall:>9.0f}{cpu:>8.1f}  {kinds}{note}")
    (p_wall, p_cpu, p_req, _), (c_wall, c_cpu, c_req, _) = rows.values()
    print(
        f"ratio checked/passive: wall {c_wall / p_wall:.2f}x, CPU {c_cpu / p_cpu:.2f}x, "
        f"requests per Exchange host {c_req['exchange'] / p_req['exchange']:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
