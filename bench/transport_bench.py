"""Per-host CPU of each scanner transport (`--transport python|wreq`) on the same lab.

One process, pinned to CPU 0 (every thread, wreq's Rust runtime included), with the lab's
nginx on CPU 1.  For each transport: the first stage only and the full probe set over the
lab's answering hosts (Exchange and web servers), repetitions interleaved so a noisy
moment on this shared machine hits every client alike; medians and the ratio to the
default transport are printed, with the load average around the run.

    .venv/bin/python bench/transport_bench.py [--hosts 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable

from exwatch.lab import Lab
from exwatch.net.transport import TRANSPORTS, client_class
from exwatch.scan.job import ScanJob, execute


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # all threads of the process
    return r.ru_utime + r.ru_stime


def _pin_every_thread(cpu: int) -> None:
    for tid in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(tid), {cpu})


def _load() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=2000)
    ap.add_argument("--port", type=int, default=19893)
    ap.add_argument("--base", default="127.24.0.1")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=200)
    args = ap.parse_args()
    for name in TRANSPORTS:
        client_class(name)  # fail now if an optional transport is not installed
    with Lab(hosts=args.hosts, port=args.port, seed=1, nginx_cpu=1, base=args.base) as lab:
        ips = [ip for ip, t in lab.ground_truth.items() if t["kind"] in ("exchange", "web")]
        _pin_every_thread(0)

        def run(transport: str, follow_ups: bool) -> Callable[[], object]:
            job = ScanJob(
                specs=list(ips),
                port=lab.port,
                timeout=2.0,
                concurrency=args.concurrency,
                allow_private=True,
                output=os.devnull,
                db=None,
                workers=1,
                follow_ups=follow_ups,
                transport=transport,
            )
            return lambda: execute(job)

        clients = {
            (name, stage): run(name, stage == "full probe set")
            for stage in ("first stage", "full probe set")
            for name in TRANSPORTS
        }
        for client in clients.values():  # warm-up: imports, knowledge base, runtimes
            client()
        _pin_every_thread(0)  # threads a transport started during the warm-up
        load_before = _load()
        rows: dict[tuple[str, str], list[tuple[float, float]]] = {k: [] for k in clients}
        for _ in range(args.repeat):
            for key, client in clients.items():
                t, c = time.perf_counter(), _cpu()
                client()
                wall, cpu = time.perf_counter() - t, _cpu() - c
                rows[key].append((len(ips) / wall, cpu / len(ips) * 1e3))
        print(
            f"{len(ips)} answering lab hosts, {args.repeat} interleaved runs, medians"
            f" (load average before {load_before}, after {_load()}; 2 cores shared):"
        )
        for (name, stage), samples in rows.items():
            rate = statistics.median(r for r, _ in samples)
            cpu = statistics.median(c for _, c in samples)
            spread = max(c for _, c in samples) - min(c for _, c in samples)
            base = statistics.median(c for _, c in rows[("python", stage)])
            print(
                f"{stage:15} {name:7} {rate:7.0f} hosts/s  {cpu:6.3f} ms CPU/host"
                f" (spread {spread:5.3f})  {1e3 / cpu:5.0f} per CPU-second"
                f"  {base / cpu:4.2f}x cheaper than python"
            )


if __name__ == "__main__":
    main()
