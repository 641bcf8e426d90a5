"""Peak resident memory of `exwatch scan` against growing target spaces.

Scans N addresses of 127.0.0.0/8 on a port nothing listens on (every connect is refused at
once), writing records to /dev/null, and prints the child's peak RSS.  Memory must stay flat
as N grows: targets are streamed from a permutation, records leave in batches, and the
number of tasks in flight is bounded by admission control.

    python bench/memory_bench.py                 # 10^4 and 10^6
    python bench/memory_bench.py --full          # also all of 127.0.0.0/8 (1.68e7; ~30 min)
    python bench/memory_bench.py --lists         # 10^5, 10^6, 10^7 targets listed on stdin
                                                 # and with -l FILE: first probe and RSS

The list mode (issue 11 #8) writes N addresses of 127.0.0.0/8 to a file, starts a scan of
them (piped to stdin, then as `-l FILE`), times the first record (the first status line
with something done) and reads the process's peak RSS (VmHWM) after `--seconds` of
scanning; then stops it with SIGTERM.  Streaming means both stay flat as N grows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
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


LIST_SIZES = (10**5, 10**6, 10**7)


def list_file(n: int) -> str:
    path = os.path.join(tempfile.gettempdir(), f"exwatch-bench-list-{n}.txt")
    if not os.path.exists(path) or os.path.getsize(path) < n * 8:
        with open(path, "w", encoding="ascii") as out:
            for start in range(0, n, 100_000):
                out.write(
                    "".join(
                        f"127.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n"
                        for i in range(start, min(n, start + 100_000))
                    )
                )
    return path


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for row in status:
            if row.startswith("VmHWM:"):
                return round(int(row.split()[1]) / 1024, 1)
    return 0.0


def run_list(n: int, mode: str, port: int, seconds: float) -> dict[str, object]:
    path = list_file(n)
    cmd = [
        sys.executable, "-m", "exwatch", "scan", "-" if mode == "stdin" else "-l",
        *([] if mode == "stdin" else [path]),
        "--port", str(port), "--allow-private", "--no-db", "-o", os.devnull, "--force",
        "--status-every", "0.1", "--workers", "1", "--user-agent", "bench (loopback only)",
    ]  # fmt: skip
    stdin = open(path, "rb") if mode == "stdin" else subprocess.DEVNULL  # noqa: SIM115
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=stdin, stderr=subprocess.PIPE, text=True)
    first = None
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("scan: ") and not line.startswith("scan: 0 "):
            first = time.monotonic() - t0
            break
        if line.startswith(("Usage", "Error", "exwatch: error")):
            raise SystemExit(f"exwatch refused the run: {line.strip()}")
    time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    peak = _peak_rss_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    if stdin is not subprocess.DEVNULL:
        stdin.close()  # type: ignore[union-attr]
    return {
        "n": n,
        "mode": mode,
        "first_record_s": None if first is None else round(first, 2),
        "peak_rss_mb": peak,
        "exit": proc.returncode,
    }


def main_lists(port: int, seconds: float, as_json: bool) -> None:
    rows = [run_list(n, mode, port, seconds) for n in LIST_SIZES for mode in ("stdin", "file")]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'listed':>10} {'mode':>6} {'first record s':>15} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['n']:>10,} {r['mode']:>6} {r['first_record_s']!s:>15} {r['peak_rss_mb']:>12}")
    print(f"(peak RSS = VmHWM after {seconds:g} s of scanning; exit 143 = stopped by SIGTERM)")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--full", action="store_true", help="also scan all of 127.0.0.0/8")
    ap.add_argument("--port", type=int, default=1, help="a port nothing listens on")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--lists", action="store_true", help="listed targets (stdin and -l FILE)")
    ap.add_argument("--seconds", type=float, default=6.0, help="scan time per list run")
    args = ap.parse_args()
    if args.lists:
        main_lists(args.port, args.seconds, args.json)
        return
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
