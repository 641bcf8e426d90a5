"""How far exwatch is from the Python floor: a minimal one-GET client on the same lab.

A second floor row replays, with the same minimal client, the very requests exwatch's full
probe set sends to each host (recorded from one scan): what those requests cost without
anything exwatch does with the answers.

The floor client is the reference prototype's shape (uvloop streams, TLS without
verification, `GET /owa/auth/logon.aspx` with `Connection: close`, read the head and at most
8 KB, one regex, close) and does nothing exwatch must do (certificate capture, redirects,
fingerprints, assessment, records).  Both run in this process, pinned to CPU 0, with the lab's
nginx on CPU 1, so the difference is exwatch's own per-host cost.

    .venv/bin/python bench/floor.py [--hosts 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import ssl
import statistics
import time
from collections.abc import Awaitable, Callable

import uvloop

from exwatch.lab import Lab
from exwatch.net import tls
from exwatch.net.http import request_bytes
from exwatch.scan.job import ScanJob, execute

# Issue 19's targets: exwatch's CPU per host as a multiple of the floor's.
TARGETS = {"exwatch, first stage only": 1.2, "exwatch, full probe set": 1.6}
_BUILD = re.compile(rb"/owa/auth/(\d+\.\d+\.\d+)/")
_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _one(ip: str, port: int, ctx: ssl.SSLContext) -> bytes | None:
    """The floor's whole work for one host; the build it read, if any (`peers_floor.py`
    reports it)."""
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
    found = _BUILD.search(body)
    writer.close()
    return found.group(1) if found else None


async def _replay_one(ip: str, port: int, ctx: ssl.SSLContext, requests: list[bytes]) -> None:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(ip, port, ssl=ctx, server_hostname=None), 5
    )
    for data in requests:
        writer.write(data)
        head = await reader.readuntil(b"\r\n\r\n")
        m = _LENGTH.search(head)
        if m:
            await reader.readexactly(int(m.group(1)))
        elif b"chunked" in head.lower():
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")
        else:
            break  # read until close: the server ends the connection
    writer.transport.abort()


async def _each_host(
    ips: list[str], concurrency: int, one: Callable[[str, ssl.SSLContext], Awaitable[object]]
) -> None:
    """`one(ip, context)` for every address, `concurrency` at a time, failures ignored (the
    floor clients only count what a host costs)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    gate = asyncio.Semaphore(concurrency)

    async def guarded(ip: str) -> None:
        async with gate:
            with contextlib.suppress(
                OSError, TimeoutError, asyncio.IncompleteReadError, ValueError
            ):
                await one(ip, ctx)

    await asyncio.gather(*(guarded(ip) for ip in ips))


async def _replay(
    ips: list[str], port: int, concurrency: int, plan: dict[str, list[bytes]]
) -> None:
    """The minimal client making, per host, the requests exwatch's full probe set made
    (same methods, paths and headers, one keep-alive connection): the floor of the full
    set's requests, without anything exwatch does with the answers."""
    await _each_host(ips, concurrency, lambda ip, ctx: _replay_one(ip, port, ctx, plan.get(ip, [])))


def _request_plan(job: ScanJob) -> dict[str, list[bytes]]:
    """What exwatch sends to each host in a full scan, byte for byte (recorded by wrapping
    the client's request encoder for one scan)."""
    from exwatch.net import client

    plan: dict[str, list[bytes]] = {}
    original = client.HttpClient.request

    async def recording(
        self: client.HttpClient,
        method: str,
        target: str,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> object:
        extra = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in extra_headers)
        plan.setdefault(self.ip, []).append(request_bytes(method, target, self._head, extra))
        return await original(self, method, target, extra_headers)

    client.HttpClient.request = recording  # type: ignore[method-assign,assignment]
    try:
        execute(job)
    finally:
        client.HttpClient.request = original  # type: ignore[method-assign]
    return plan


async def _floor(ips: list[str], port: int, concurrency: int) -> None:
    await _each_host(ips, concurrency, lambda ip, ctx: _one(ip, port, ctx))


def _measure(run: object, n: int) -> tuple[float, float]:
    """(hosts/s, ms CPU per host) of one run."""
    t, c = time.perf_counter(), _cpu()
    assert callable(run)
    run()
    wall, cpu = time.perf_counter() - t, _cpu() - c
    return n / wall, cpu / n * 1e3


def fresh_certificates() -> None:
    """Forget the certificates exwatch has read (its fields are cached by fingerprint, for
    the certificates a fleet shares): every lab host has its own, as most servers found
    by address do, so a scan repeated in one process must not find them read already."""
    tls._cache.clear()
    tls._names.clear()


def run_scan(job: ScanJob) -> None:
    """One of exwatch's scans in a benchmark that repeats them in one process."""
    fresh_certificates()
    execute(job)


def lab_job(ips: list[str], port: int, follow_ups: bool) -> ScanJob:
    """exwatch's scan of the lab's answering hosts as the benches run it (also
    `bench/own_cost.py`): one worker, 200 in flight, records to /dev/null, no store."""
    return ScanJob(
        specs=list(ips),
        port=port,
        timeout=2.0,
        concurrency=200,
        allow_private=True,
        output=os.devnull,
        db=None,
        workers=1,
        follow_ups=follow_ups,
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=2000)
    ap.add_argument("--port", type=int, default=19890)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with Lab(hosts=args.hosts, port=args.port, seed=1, nginx_cpu=1) as lab:
        ips = [ip for ip, t in lab.ground_truth.items() if t["kind"] in ("exchange", "web")]
        os.sched_setaffinity(0, {0})

        def job(follow_ups: bool) -> ScanJob:
            return lab_job(ips, lab.port, follow_ups)

        plan = _request_plan(job(True))
        per_host = sum(len(v) for v in plan.values()) / len(ips)
        clients: dict[str, Callable[[], object]] = {
            "floor (one GET)": lambda: uvloop.run(_floor(ips, lab.port, 200)),
            "floor, full set's requests": lambda: uvloop.run(_replay(ips, lab.port, 200, plan)),
            "exwatch, first stage only": lambda: run_scan(job(False)),
            "exwatch, full probe set": lambda: run_scan(job(True)),
        }
        for run in clients.values():  # warm-up: imports, knowledge base, caches
            run()
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for _ in range(args.repeat):  # interleaved, so a noisy moment hits every client
            for name, run in clients.items():
                runs[name].append(_measure(run, len(ips)))
        floor_cpu = statistics.median(c for _, c in runs["floor (one GET)"])
        print(f"{len(ips)} answering lab hosts, {args.repeat} interleaved runs, medians;")
        print(f"the full probe set makes {per_host:.2f} requests per host:")
        for name, rows in runs.items():
            rate = statistics.median(r for r, _ in rows)
            cpu = statistics.median(c for _, c in rows)
            ratio = cpu / floor_cpu
            target = TARGETS.get(name)
            verdict = (
                ""
                if target is None
                else f"  target <= {target:.1f}x: {'met' if ratio <= target else 'not met'}"
            )
            print(
                f"{name:28} {rate:7.0f} hosts/s  {cpu:6.3f} ms CPU/host"
                f"  ({1e3 / cpu:5.0f} per CPU-second, {ratio:4.2f}x the floor's CPU){verdict}"
            )


if __name__ == "__main__":
    main()
