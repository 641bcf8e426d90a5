"""The candidate client stacks for issue 19, one GET per host, on the same lab.

What each stack costs for the scanner's smallest unit of work — TCP, a full TLS
handshake without verification, `GET /owa/auth/logon.aspx`, the body, the peer
certificate in DER where the stack can give it, close — measured in one process pinned
to CPU 0 (every thread) with nginx on CPU 1, repetitions interleaved, medians:

- `python`: asyncio streams + Python's ssl (OpenSSL) on uvloop, the default transport;
- `wreq per host`: one wreq client per host, as `--transport wreq` uses it (dropping the
  client closes the host's connection);
- `wreq shared`: one wreq client for every host (its idle connections outlive the host);
- `curl_cffi`: libcurl (BoringSSL) through curl_cffi's AsyncSession, when installed
  (`pip install curl_cffi`; it has no API for the peer certificate, so none is read).

    .venv/bin/python bench/transport_stacks.py [--hosts 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import resource
import ssl
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
import wreq

from exwatch.lab import Lab

PATH = "/owa/auth/logon.aspx"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _pin_every_thread(cpu: int) -> None:
    for tid in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(tid), {cpu})


async def _gated(ips: list[str], one: Callable[[str], Awaitable[None]]) -> int:
    gate = asyncio.Semaphore(200)
    failed = 0

    async def guarded(ip: str) -> None:
        nonlocal failed
        async with gate:
            try:
                await asyncio.wait_for(one(ip), 10)
            except Exception:
                failed += 1

    await asyncio.gather(*(guarded(ip) for ip in ips))
    return failed


async def _python(ips: list[str], port: int) -> int:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    async def one(ip: str) -> None:
        reader, writer = await asyncio.open_connection(ip, port, ssl=ctx, server_hostname=None)
        writer.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (
            PATH.encode(), ip.encode()))  # fmt: skip
        await reader.read()
        assert writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()

    return await _gated(ips, one)


def _wreq_client() -> wreq.Client:
    return wreq.Client(
        tls_verify=False,
        tls_info=True,
        http1_only=True,
        no_proxy=True,
        connect_timeout=datetime.timedelta(seconds=5),
        pool_max_idle_per_host=1,
        dns_options=wreq.dns.DnsOptions(system_dns=True),
    )


async def _wreq(ips: list[str], port: int, shared: bool) -> int:
    common = _wreq_client() if shared else None

    async def one(ip: str) -> None:
        client = common or _wreq_client()
        response = await client.get(f"https://{ip}:{port}{PATH}")
        await response.bytes()
        assert response.tls_info is not None
        assert response.tls_info.peer_certificate()
        if common is None:
            client.close()

    return await _gated(ips, one)


async def _curl(ips: list[str], port: int) -> int:
    from curl_cffi import AsyncSession

    async with AsyncSession(verify=False, max_clients=200) as session:

        async def one(ip: str) -> None:
            await session.get(f"https://{ip}:{port}{PATH}")

        return await _gated(ips, one)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=2000)
    ap.add_argument("--port", type=int, default=19894)
    ap.add_argument("--base", default="127.27.0.1")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    stacks: dict[str, Callable[[list[str], int], Awaitable[int]]] = {
        "python": _python,
        "wreq per host": lambda ips, port: _wreq(ips, port, shared=False),
        "wreq shared": lambda ips, port: _wreq(ips, port, shared=True),
    }
    try:
        import curl_cffi  # noqa: F401  (optional: only measured when installed)

        stacks["curl_cffi"] = _curl
    except ImportError:
        print("curl_cffi not installed: left out")
    with Lab(hosts=args.hosts, port=args.port, seed=1, nginx_cpu=1, base=args.base) as lab:
        ips = [ip for ip, t in lab.ground_truth.items() if t["kind"] in ("exchange", "web")]
        _pin_every_thread(0)

        def run(stack: Callable[[list[str], int], Awaitable[int]]) -> Any:
            return uvloop.run(stack(ips, lab.port))  # type: ignore[arg-type]

        for stack in stacks.values():
            run(stack)  # warm-up
        _pin_every_thread(0)
        rows: dict[str, list[tuple[float, int]]] = {name: [] for name in stacks}
        for _ in range(args.repeat):
            for name, stack in stacks.items():
                c = _cpu()
                failed = run(stack)
                rows[name].append(((_cpu() - c) / len(ips) * 1e3, failed))
        with open("/proc/loadavg", encoding="ascii") as f:
            load = " ".join(f.read().split()[:3])
        print(f"{len(ips)} hosts, one GET each, {args.repeat} interleaved runs (load {load}):")
        base = statistics.median(c for c, _ in rows["python"])
        for name, samples in rows.items():
            cpu = statistics.median(c for c, _ in samples)
            failed = max(f for _, f in samples)
            print(
                f"{name:14} {cpu:6.3f} ms CPU/host  {1e3 / cpu:5.0f} per CPU-second"
                f"  {base / cpu:4.2f}x python  (failed: {failed})"
            )


if __name__ == "__main__":
    main()
