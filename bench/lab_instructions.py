"""exwatch against the Python floor in instructions: the clients of `bench/floor.py` on the
same lab, each counted by callgrind, so the ratio does not move with the machine's load.

CPU time on this shared machine scatters by ±10 % between runs and shrinks every ratio when
the machine is slow (the floor's handshake slows down, exwatch's extra work less so).
callgrind counts the instructions a client executes in user space, the same on a quiet or a
busy machine.  It does not count the kernel's work (system calls: `bench/floor.py` and
`strace -c` see those) nor cache misses, so its ratios are lower than the CPU-time ratios;
use it to judge a change, and `floor.py` for the targets.

The lab runs in this process; each client runs in its own process under valgrind, once
with one scan and once with two, and the difference over the hosts is one scan per host
(start-up, imports and the warm-up scan cancel out).  Concurrency is 20 and timeouts 30 s,
because a client under valgrind runs about fifty times slower.

    .venv/bin/python bench/lab_instructions.py [--hosts 2000] [--clients floor,first,replay,full]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CLIENTS = {
    "floor": "floor (one GET)",
    "replay": "floor, full set's requests",
    "first": "exwatch, first stage only",
    "full": "exwatch, full probe set",
}
_COLLECTED = re.compile(rb"Collected : (\d+)")


def _client(info_path: Path, mode: str, scans: int) -> None:
    """One client's scans of the lab (run under valgrind by `main`)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import floor
    import uvloop

    info = json.loads(info_path.read_text())
    ips, port, concurrency = info["ips"], info["port"], 20
    if mode == "floor":
        for _ in range(scans):
            uvloop.run(floor._floor(ips, port, concurrency))
    elif mode == "replay":
        plan = {ip: [r.encode("latin-1") for r in v] for ip, v in info["plan"].items()}
        for _ in range(scans):
            uvloop.run(floor._replay(ips, port, concurrency, plan))
    else:
        job = dataclasses.replace(
            floor.lab_job(ips, port, mode == "full"), concurrency=concurrency, timeout=30.0
        )
        for _ in range(scans):
            floor.run_scan(job)


def _count(info_path: Path, mode: str, scans: int, out: Path) -> int:
    """Instructions of one client process making `scans` scans."""
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out / f'{mode}.{scans}.out'}",
            sys.executable,
            __file__,
            "--client",
            mode,
            "--scans",
            str(scans),
            "--info",
            str(info_path),
        ],
        capture_output=True,
        check=False,
    )
    found = _COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(
            f"{mode}: valgrind failed:\n{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=2000)
    ap.add_argument("--port", type=int, default=19892)
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--scans", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--info", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        _client(args.info, args.client, args.scans)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    modes = [m for m in args.clients.split(",") if m]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import floor

    from exwatch.lab import Lab

    with Lab(hosts=args.hosts, port=args.port, seed=1) as lab, tempfile.TemporaryDirectory() as tmp:
        ips = [ip for ip, t in lab.ground_truth.items() if t["kind"] in ("exchange", "web")]
        plan = floor._request_plan(floor.lab_job(ips, lab.port, True))
        info = Path(tmp) / "lab.json"
        info.write_text(
            json.dumps(
                {
                    "ips": ips,
                    "port": lab.port,
                    "plan": {ip: [r.decode("latin-1") for r in v] for ip, v in plan.items()},
                }
            )
        )
        jobs = [(m, n) for m in modes for n in (1, 2)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            counts = dict(
                zip(
                    jobs, pool.map(lambda j: _count(info, j[0], j[1], Path(tmp)), jobs), strict=True
                )
            )
    per_host = {m: (counts[(m, 2)] - counts[(m, 1)]) / len(ips) for m in modes}
    print(f"{len(ips)} answering lab hosts; instructions per host in user space (callgrind):")
    base = per_host.get("floor")
    for mode in modes:
        ratio = f"  {per_host[mode] / base:.3f}x the floor's" if base else ""
        print(f"{CLIENTS[mode]:28} {per_host[mode]:12,.0f}{ratio}")


if __name__ == "__main__":
    main()
