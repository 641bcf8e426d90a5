# ruff: noqa: E501  (log lines and fixture rows are kept whole on purpose)
"""Throughput and memory of `exwatch hostcheck` against grep over the same generated logs.

Generates a KAPE-style copy under /tmp (HttpProxy and IIS logs in the real formats,
benign traffic with a few attack lines), then prints MB/s for exwatch's full run and for
`grep -c` / `grep -i` over the same files, and the peak RSS of a separate
`exwatch hostcheck --json` process over the copy.  `--compare-src DIR` also times the
same check with another source tree (e.g. `git archive main src | tar -x -C /tmp/main`)
in a subprocess, and prints the ratio.  Nothing is committed; the data is deleted unless
--keep.

    .venv/bin/python bench/hostcheck_bench.py --size-mb 1024 [--compare-src /tmp/main/src]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hostcheck"))

from hostcheck_logfmt import HP_HEADER, IIS_HEADER, hp, iis  # type: ignore[import-not-found]

from exwatch.hostcheck.checker import run_hostcheck

EX = "C/Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy"
FILE_MB = 64


def generate(root: Path, size_mb: int) -> list[Path]:
    rng = random.Random(7)
    users = [f"CONTOSO\\user{i}" for i in range(200)]
    stems = [
        "/owa/",
        "/owa/service.svc",
        "/EWS/Exchange.asmx",
        "/mapi/emsmdb/",
        "/ecp/default.aspx",
        "/Microsoft-Server-ActiveSync/default.eas",
    ]
    hp_pool = [
        hp(
            DateTime=f"2021-03-0{1 + i % 9}T{i % 24:02d}:00:00.000Z",
            Protocol="Owa",
            UrlStem=rng.choice(stems),
            AuthenticatedUser=rng.choice(users),
            IsAuthenticated="true",
            AnchorMailbox=f"Sid~S-1-5-21-1-2-3-{1000 + i}",
            UserAgent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/89.0 Safari/537.36",
            ClientIpAddress=f"192.0.2.{i % 250}",
            Method="GET",
        )
        for i in range(500)
    ]
    iis_pool = [
        iis(
            date=f"2021-03-0{1 + i % 9}",
            time=f"{i % 24:02d}:00:00",
            stem=rng.choice(stems),
            user=rng.choice(users),
            cip=f"192.0.2.{i % 250}",
        )
        for i in range(500)
    ]
    attack_hp = hp(
        AnchorMailbox="ServerInfo~a]@exch01:444/ecp/DDI/DDIService.svc/GetObject?schema=OABVirtualDirectory#",
        ClientIpAddress="130.255.189.21",
    )
    attack_iis = iis(
        method="POST", stem="/owa/auth/RedirSuiteServerProxy.aspx", cip="139.162.202.236"
    )
    files: list[Path] = []
    target = size_mb << 20
    written = 0
    n = 0
    while written < target:
        is_hp = n % 2 == 0
        folder = root / (f"{EX}/Owa" if is_hp else "C/inetpub/logs/LogFiles/W3SVC1")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (f"HttpProxy_20210301{n:02d}-1.LOG" if is_hp else f"u_ex2103{n:04d}.log")
        pool, header, attack = (
            (hp_pool, HP_HEADER, attack_hp) if is_hp else (iis_pool, IIS_HEADER, attack_iis)
        )
        block = "\n".join(pool) + "\n"
        reps = max(1, (FILE_MB << 20) // len(block))
        with path.open("w", encoding="utf-8") as fh:
            fh.write(header.format(date="2021-03-01T00:00:00.000Z"))
            for r in range(reps):
                fh.write(block)
                if r == reps // 2:
                    fh.write(attack + "\n")
        written += path.stat().st_size
        files.append(path)
        n += 1
    return files


def rate(label: str, mb: float, seconds: float) -> float:
    print(f"{label:34} {seconds:8.2f} s  {mb / seconds:8.1f} MB/s")
    return mb / seconds


def child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit code) of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss, proc.returncode


SNIPPET = "import sys; from pathlib import Path; from exwatch.hostcheck.checker import run_hostcheck; run_hostcheck(Path(sys.argv[1]))"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument(
        "--line-path", action="store_true", help="also time the line-by-line reference path"
    )
    ap.add_argument("--compare-src", type=Path, help="another exwatch src/ tree to time")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="exwatch-hostcheck-bench-", dir="/tmp"))
    try:
        t0 = time.perf_counter()
        files = generate(root, args.size_mb)
        mb = sum(f.stat().st_size for f in files) / (1 << 20)
        print(
            f"generated {len(files)} files, {mb:.0f} MB under {root} in {time.perf_counter() - t0:.0f} s"
        )
        names = [str(f) for f in files]
        for label, cmd in (
            ("grep -c ServerInfo~", ["grep", "-c", "ServerInfo~", *names]),
            ("grep -i -c serverinfo~", ["grep", "-i", "-c", "serverinfo~", *names]),
        ):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
            rate(label, mb, time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = run_hostcheck(root)
        rate("exwatch hostcheck (all rules)", mb, time.perf_counter() - t0)
        print(f"findings: {len(result.findings)}; records: {sum(s.records for s in result.files)}")
        exe = str(Path(sys.executable).with_name("exwatch"))
        seconds, rss, code = child([exe, "hostcheck", str(root), "--json"])
        print(
            f"{'exwatch hostcheck --json (process)':34} {seconds:8.2f} s  {mb / seconds:8.1f} MB/s"
            f"  peak RSS {rss / 1024:.0f} MiB  exit {code}"
        )
        if args.compare_src:
            # Both trees through the same snippet in a fresh process, twice, alternating.
            here = Path(__file__).resolve().parents[1] / "src"
            best: dict[str, float] = {}
            for _ in range(2):
                for label, src in (("this tree", here), ("compare-src", args.compare_src)):
                    env = dict(os.environ, PYTHONPATH=str(src.resolve()))
                    seconds, rss, code = child([sys.executable, "-c", SNIPPET, str(root)], env)
                    best[label] = max(best.get(label, 0.0), mb / seconds)
                    print(
                        f"{label + ' run_hostcheck':34} {seconds:8.2f} s  {mb / seconds:8.1f} MB/s"
                        f"  peak RSS {rss / 1024:.0f} MiB  exit {code}"
                    )
            print(
                f"ratio this tree / compare-src (best of 2): {best['this tree'] / best['compare-src']:.2f}"
            )
        if args.line_path:
            t0 = time.perf_counter()
            slow = run_hostcheck(root, block_scan=False)
            rate("exwatch hostcheck (line path)", mb, time.perf_counter() - t0)
            same = [f.to_json() for f in slow.findings] == [f.to_json() for f in result.findings]
            same_stats = [s.to_json() for s in slow.files] == [s.to_json() for s in result.files]
            print(f"identical findings: {same}; identical file stats: {same_stats}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
