"""A straightforward aiohttp-based Exchange build scanner, as a typical user would write it.

    .venv/bin/python bench/peers_aiohttp.py LIST --port 28443 [--concurrency 500] -o out.jsonl

Peer for `bench/peers.py`, the same work as `peers_httpx.py`: one `aiohttp.ClientSession`
with certificate checks off and `force_close` (a new connection per host), a semaphore
for concurrency, `GET /owa/auth/logon.aspx`, the build from `X-OWA-Version` or the
`/owa/auth/<build>/` resource paths, one JSON line per address.  Stdlib event loop.
Prints a one-line JSON summary with its scan-loop time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

PATH = "/owa/auth/logon.aspx"
BODY_BUILD = re.compile(r"/owa/auth/(\d+\.\d+\.\d+(?:\.\d+)?)/", re.IGNORECASE)


def build_of(headers: Mapping[str, str], body: str) -> str | None:
    header = headers.get("X-OWA-Version")
    if header:
        return header
    m = BODY_BUILD.search(body)
    return m.group(1) if m else None


async def probe(
    session: aiohttp.ClientSession, sem: asyncio.Semaphore, ip: str, port: int
) -> dict[str, Any]:
    async with sem:
        try:
            async with session.get(f"https://{ip}:{port}{PATH}") as r:
                body = await r.text(errors="replace")
                return {
                    "ip": ip,
                    "port": port,
                    "ok": True,
                    "status": r.status,
                    "build": build_of(r.headers, body),
                    "server": r.headers.get("Server"),
                }
        except (aiohttp.ClientError, TimeoutError) as exc:
            return {"ip": ip, "port": port, "ok": False, "error": type(exc).__name__}


async def scan(ips: list[str], port: int, concurrency: int, seconds: float) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(ssl=False, limit=0, force_close=True)
    client_timeout = aiohttp.ClientTimeout(
        total=3 * seconds, sock_connect=seconds, sock_read=seconds
    )
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        return await asyncio.gather(*(probe(session, sem, ip, port) for ip in ips))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("list", type=Path)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    ips = [line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    t0 = time.perf_counter()
    results = asyncio.run(scan(ips, args.port, args.concurrency, args.timeout))
    elapsed = time.perf_counter() - t0
    with args.output.open("w") as out:
        for r in results:
            out.write(json.dumps(r) + "\n")
    summary = {
        "hosts": len(results),
        "ok": sum(r["ok"] for r in results),
        "builds": sum(1 for r in results if r.get("build")),
        "scan_s": round(elapsed, 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
