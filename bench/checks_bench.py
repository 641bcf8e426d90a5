"""What the opt-in checks cost: the same lab scanned without and with `--check`, in one
invocation, with the requests per host nginx logged for each scan.

    .venv/bin/python bench/checks_bench.py [--hosts 1000] [--checks all-safe] [--runs 2]

Prints, per scan: wall time, hosts/s, scanner CPU seconds, requests per answering host by
ground-truth kind (on-prem Exchange, other answering hosts), and the ratio of the checked
scan to the passive one.  nginx (one worker) serves the lab; only 127.x.y.z is contacted.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--checks", default="all-safe")
    ap.add_argument("--runs", type=int, default=2, help="scans of each kind (best is shown)")
    args = ap.parse_args()
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
