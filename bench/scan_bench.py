"""Scanner benchmark against the lab: baseline figures, then exwatch itself.

    .venv/bin/python bench/scan_bench.py [--hosts 3000] [--seconds 10] [--port 28443]

Starts `exwatch lab` with one nginx worker pinned to CPU 1, then runs each client pinned
to CPU 0 ("config A" of the performance reference): `openssl s_time -new` (sequential full
handshakes + GET) and, if installed, `wrk` with `Connection: close` (a fresh TLS connection
per request).  nginx's own CPU time is read from /proc, so the figures also show what one
nginx core can serve (it must stay well above the scanner's rate).  Only 127.x.y.z is
contacted; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
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


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=3000)
    ap.add_argument("--port", type=int, default=28443)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
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
