"""Scanner benchmark against the lab: baseline figures, then exwatch itself, then the
requests it makes per host, next to another revision's scanner on the same lab.

    .venv/bin/python bench/scan_bench.py [--hosts 3000] [--seconds 10] [--port PORT]
    .venv/bin/python bench/scan_bench.py --requests-only [--before main]

Requests per host: nginx logs every request; the scanner of `--before` (a git revision,
exported with `git archive` and run with its own source first on PYTHONPATH) and this
checkout's scan the same lab one after the other, and the log says how many requests each
host got from each, by ground-truth kind (`web` is the answering non-Exchange hosts).

Starts `exwatch lab` with one nginx worker pinned to CPU 1, then runs each client pinned
to CPU 0 ("config A" of the performance reference): `openssl s_time -new` (sequential full
handshakes + GET) and, if installed, `wrk` with `Connection: close` (a fresh TLS connection
per request).  nginx's own CPU time is read from /proc, so the figures also show what one
nginx core can serve (it must stay well above the scanner's rate).  Only 127.x.y.z is
contacted; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from exwatch.lab import Lab

CLIENT_CPU = "0"
NGINX_CPU = 1
TICKS = os.sysconf("SC_CLK_TCK")


def _proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a process and its worker children (nginx master + workers)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def _nginx_pid(lab: Lab) -> int:
    # nginx runs under taskset, which execs nginx: the Popen pid is nginx's master.
    assert lab.nginx_proc is not None
    return lab.nginx_proc.pid


def _measure(
    lab: Lab, argv: list[str], parse: re.Pattern[str], seconds: float, count: bool = False
) -> dict[str, Any]:
    """Run one client; `parse` finds a rate, or with `count` a number of connections."""
    pid = _nginx_pid(lab)
    cpu0 = _proc_cpu_seconds(pid)
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    wall = time.perf_counter() - t0
    nginx_cpu = _proc_cpu_seconds(pid) - cpu0
    m = parse.search(out.stdout)
    rate = None if m is None else float(m.group(1))
    if rate is not None and count:
        rate = round(rate / wall, 1)
    result: dict[str, Any] = {
        "command": " ".join(argv),
        "rate_per_s": rate,
        "wall_s": round(wall, 2),
        "nginx_cpu_share": round(nginx_cpu / wall, 3),
    }
    if rate and nginx_cpu > 0:
        # What one nginx core could serve if the client were not the bottleneck.
        result["nginx_capacity_per_core"] = round(rate / (nginx_cpu / wall))
    if m is None:
        result["output_tail"] = (out.stdout + out.stderr)[-500:]
    return result


def openssl_s_time(lab: Lab, target: tuple[str, int], seconds: int) -> dict[str, Any]:
    argv = [
        "taskset",
        "-c",
        CLIENT_CPU,
        "openssl",
        "s_time",
        "-connect",
        f"{target[0]}:{target[1]}",
        "-new",
        "-time",
        str(seconds),
        "-www",
        "/owa/auth/logon.aspx",
    ]
    # s_time's "connections/user sec" divides by its own CPU time: use wall time instead.
    return _measure(lab, argv, re.compile(r"(\d+) connections in [\d.]+s;"), seconds, count=True)


def wrk(lab: Lab, target: tuple[str, int], seconds: int, connections: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk not installed (apt-get install -y wrk)"}
    url = f"https://{target[0]}:{target[1]}/owa/auth/logon.aspx"
    argv = [
        "taskset",
        "-c",
        CLIENT_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "-H",
        "Connection: close",
        url,
    ]
    return _measure(lab, argv, re.compile(r"Requests/sec:\s+([\d.]+)"), seconds)


# ---------------------------------------------------------------------------------------
def run_exwatch(lab: Lab, timeout: float = 2.0) -> dict[str, Any]:
    """Scan every lab address with exwatch pinned to CPU 0 (one worker) and return its
    figures: hosts_per_s, cpu_us_per_host, peak_rss_mb and accuracy against the ground truth.

    The whole lab is scanned, silent and hostile hosts included, so the rate is lower than
    bench/peers.py's (which scans only the hosts that answer): silent hosts hold a slot for
    the whole timeout.  Measurement code is shared with bench/peers.py.
    """
    from peers import Setup, exwatch_core, has_workers_flag  # bench/ is on sys.path

    with tempfile.TemporaryDirectory(prefix="exwatch-scan-bench-") as tmp:
        setup = Setup(
            lab=lab,
            port=lab.port,
            ips=[ip for ip, _ in lab.targets],
            workdir=Path(tmp),
            concurrency=500,
            timeout=timeout,
            seconds=0,
            run_timeout=300.0,
            has_workers=has_workers_flag(),
        )
        row = exwatch_core(setup)
    return {
        "hosts": row.hosts,
        "hosts_per_s": row.rate,
        "hosts_per_s_end_to_end": row.rate_e2e,
        "cpu_us_per_host": round(row.cpu_ms * 1000),
        "peak_rss_mb": row.rss_mb,
        "nginx_us_per_host": round(row.nginx_ms * 1000),
        "answered": row.answered,
        "builds": row.builds,
        **row.extra,
    }


# ---------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent


def _export_source(ref: str, into: Path) -> str:
    """`ref`'s src/ tree under `into`; returns the commit it names."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", ref], capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


def _scan(lab: Lab, out: Path, source: Path | None) -> str:
    """One CLI scan of the whole lab; `source`: another revision's src/ to run instead.
    Returns the path the imported exwatch came from (proof of which code ran)."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    argv = [
        sys.executable,
        "-c",
        "import sys, exwatch.cli as c; print(c.__file__, file=sys.stderr); "
        "sys.argv[0] = 'exwatch'; c.run()",
        "scan",
        *lab.cidr,
        "--port",
        str(lab.port),
        "--allow-private",
        "--no-db",
        "-o",
        str(out),
        "-q",
        "--timeout",
        "3",
        "--concurrency",
        "200",
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scan failed ({done.returncode}): {done.stderr[-800:]}")
    return done.stderr.strip().splitlines()[0] if done.stderr.strip() else "?"


def _requests_since(log: Path, offset: int) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    with log.open("rb") as fh:
        fh.seek(offset)
        for line in fh:
            counts[line.split(b" ", 1)[0].decode()] += 1
    return counts


def requests_per_host(lab: Lab, before: str) -> dict[str, Any]:
    """Mean requests per host and kind, `before`'s scanner and this checkout's, one lab."""
    log = lab.access_log_path
    truth = lab.ground_truth
    runs: dict[str, collections.Counter[str]] = {}
    meta: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="exwatch-requests-") as tmp:
        meta["before_commit"] = _export_source(before, Path(tmp))
        for label, source in (("before", Path(tmp) / "src"), ("after", None)):
            time.sleep(0.5)  # nginx writes each line at once; let the last one land
            offset = log.stat().st_size if log.exists() else 0
            cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            meta[f"{label}_code"] = _scan(lab, Path(tmp) / f"{label}.jsonl", source)
            cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            meta[f"{label}_scanner_cpu_s"] = f"{cpu:.2f}"  # the whole scan, startup included
            time.sleep(0.5)
            runs[label] = _requests_since(log, offset)
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for ip, t in truth.items():
        if t["expected_status"] != "success":
            continue  # no answer, no requests worth counting
        groups[t["kind"]].append(ip)
        groups[f"{t['kind']}:{t['profile']}"].append(ip)
    table: dict[str, Any] = {}
    for group, ips in sorted(groups.items()):
        row: dict[str, Any] = {"hosts": len(ips)}
        for label in ("before", "after"):
            row[label] = round(sum(runs[label][ip] for ip in ips) / len(ips), 3)
        row["delta"] = round(row["after"] - row["before"], 3)
        row["ratio"] = round(row["after"] / row["before"], 3) if row["before"] else None
        table[group] = row
    return {**meta, "per_host": table}


def _print_requests(report: dict[str, Any]) -> None:
    print(
        f"requests per answering host: before = {report['before_commit'][:12]},"
        " after = this checkout"
    )
    print(
        f"scanner CPU for the whole lab: before {report['before_scanner_cpu_s']} s,"
        f" after {report['after_scanner_cpu_s']} s"
    )
    print(f"{'group':40} {'hosts':>6} {'before':>8} {'after':>8} {'delta':>7} {'ratio':>7}")
    for group, row in report["per_host"].items():
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        print(
            f"{group:40} {row['hosts']:>6} {row['before']:>8.2f} {row['after']:>8.2f}"
            f" {row['delta']:>+7.2f} {ratio:>7}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=3000)
    ap.add_argument("--port", type=int, default=None, help="lab port (default: a free one)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--before", default="main", help="git revision to compare request counts with")
    ap.add_argument(
        "--requests-only", action="store_true", help="only the requests-per-host comparison"
    )
    args = ap.parse_args()
    if args.port is None:
        with socket.socket() as s:  # other checkouts run labs at the same time
            s.bind(("127.0.0.1", 0))
            args.port = s.getsockname()[1]
    t0 = time.perf_counter()
    if args.requests_only:
        with Lab(hosts=args.hosts, port=args.port, seed=args.seed, access_log=True) as lab:
            report = requests_per_host(lab, args.before)
        _print_requests(report)
        print(json.dumps(report, indent=2))
        return
    with Lab(hosts=args.hosts, port=args.port, seed=args.seed, nginx_cpu=NGINX_CPU) as lab:
        started = time.perf_counter() - t0
        target = next(
            (ip, args.port)
            for ip, gt in lab.ground_truth.items()
            if gt["kind"] == "exchange" and gt["profile"] == "full"
        )
        report: dict[str, Any] = {
            "lab": {
                "hosts": args.hosts,
                "counts": lab.ground_truth_document["counts"],
                "start_s": round(started, 2),
                "cidrs": len(lab.cidr),
            },
            "openssl_s_time_new": openssl_s_time(lab, target, args.seconds),
            "wrk_close_c50": wrk(lab, target, args.seconds, 50),
            "wrk_close_c200": wrk(lab, target, args.seconds, 200),
            "exwatch": run_exwatch(lab),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
