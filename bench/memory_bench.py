"""Peak resident memory of `exwatch scan` against growing target spaces.

Scans N addresses of 127.0.0.0/8 on a port nothing listens on (every connect is refused at
once), writing records to /dev/null, and prints the child's peak RSS.  Memory must stay flat
as N grows: targets are streamed from a permutation, records leave in batches, and the
number of tasks in flight is bounded by admission control.

    python bench/memory_bench.py                 # 10^4 and 10^6
    python bench/memory_bench.py --full          # also all of 127.0.0.0/8 (1.68e7; ~30 min)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SIZES = {"1e4": "127.200.0.0/18", "1e6": "127.128.0.0/12"}  # 16,384 and 1,048,576 addresses
FULL = {"1.68e7": "127.0.0.0/8"}


def run(cidr: str, port: int, workers: int) -> dict[str, object]:
    cmd = [
        sys.executable,
        "-m",
        "exwatch",
        "scan",
        cidr,
        "--port",
        str(port),
        "--allow-private",
        "--no-db",
        "-o",
        os.devnull,
        "-q",
        "--timeout",
        "2",
        "--concurrency",
        "1000",
        "--workers",
        str(workers),
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    err = proc.stderr.read() if proc.stderr else ""
    done = ""
    for line in err.splitlines():
        if line.startswith("scan ") and "addresses" in line:
            done = line
    return {
        "cidr": cidr,
        "workers": workers,
        "exit": os.waitstatus_to_exitcode(status),
        "seconds": round(elapsed, 1),
        # ru_maxrss of a waited child is the largest RSS among it and its own children (KiB)
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "summary": done,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--full", action="store_true", help="also scan all of 127.0.0.0/8")
    ap.add_argument("--port", type=int, default=1, help="a port nothing listens on")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = dict(SIZES, **(FULL if args.full else {}))
    rows = [dict(run(cidr, args.port, args.workers), n=n) for n, cidr in sizes.items()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'targets':>8} {'cidr':>16} {'seconds':>8} {'cpu s':>7} {'peak RSS MB':>12}")
    for r in rows:
        print(
            f"{r['n']:>8} {r['cidr']:>16} {r['seconds']:>8} {r['cpu_s']:>7} {r['peak_rss_mb']:>12}"
        )
    print(f"(getrusage of the child: max RSS of one process; {resource.getpagesize()} B pages)")


if __name__ == "__main__":
    main()
