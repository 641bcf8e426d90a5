"""How far exwatch is from the Python floor: a minimal one-GET client on the same lab.

The floor client is the reference prototype's shape (uvloop streams, TLS without
verification, `GET /owa/auth/logon.aspx` with `Connection: close`, read the head and at most
8 KB, one regex, close) and does nothing exwatch must do (certificate capture, redirects,
fingerprints, assessment, records).  Both run in this process, pinned to CPU 0, with the lab's
nginx on CPU 1, so the difference is exwatch's own per-host cost.

    .venv/bin/python bench/floor.py [--hosts 2000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import ssl
import time

import uvloop

from exwatch.lab import Lab
from exwatch.scan.job import ScanJob, execute

_BUILD = re.compile(rb"/owa/auth/(\d+\.\d+\.\d+)/")
_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _one(ip: str, port: int, ctx: ssl.SSLContext) -> None:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(ip, port, ssl=ctx, server_hostname=None), 5
    )
    writer.write(
        b"GET /owa/auth/logon.aspx HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % ip.encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    m = _LENGTH.search(head)
    n = min(int(m.group(1)), 8192) if m else 0
    body = await reader.readexactly(n) if n else b""
    _BUILD.search(body)
    writer.close()


async def _floor(ips: list[str], port: int, concurrency: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    gate = asyncio.Semaphore(concurrency)

    async def guarded(ip: str) -> None:
        async with gate:
            with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
                await _one(ip, port, ctx)

    await asyncio.gather(*(guarded(ip) for ip in ips))


def _measure(label: str, n: int, run: object) -> None:
    t, c = time.perf_counter(), _cpu()
    assert callable(run)
    run()
    wall, cpu = time.perf_counter() - t, _cpu() - c
    print(f"{label:28} {n / wall:7.0f} hosts/s  {cpu / n * 1e3:6.3f} ms CPU/host")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=2000)
    ap.add_argument("--port", type=int, default=19890)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with Lab(hosts=args.hosts, port=args.port, seed=1, nginx_cpu=1) as lab:
        ips = [ip for ip, t in lab.ground_truth.items() if t["kind"] in ("exchange", "web")]
        os.sched_setaffinity(0, {0})
        for _ in range(args.repeat):
            _measure("floor (one GET)", len(ips), lambda: uvloop.run(_floor(ips, lab.port, 200)))
            for follow_ups in (False, True):
                job = ScanJob(
                    specs=list(ips),
                    port=lab.port,
                    timeout=2.0,
                    concurrency=200,
                    allow_private=True,
                    output=os.devnull,
                    db=None,
                    workers=1,
                    follow_ups=follow_ups,
                )
                label = "exwatch, full probe set" if follow_ups else "exwatch, first stage only"
                _measure(label, len(ips), lambda job=job: execute(job))


if __name__ == "__main__":
    main()
