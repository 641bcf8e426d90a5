"""A straightforward aiohttp-based Exchange build scanner, as a typical user would write it.

    .venv/bin/python bench/peers_aiohttp.py LIST --port 28443 [--concurrency 500] -o out.jsonl

Peer for `bench/peers.py`, the same work as `peers_httpx.py`: one `aiohttp.ClientSession`
with certificate checks off and `force_close` (a new connection per host), a semaphore
for concurrency, `GET /owa/auth/logon.aspx`, the build from `X-OWA-Version` or the
`/owa/auth/<build>/` resource paths, one JSON line per address.  Stdlib event loop.
Prints a one-line JSON summary with its scan-loop time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from peer_cli import PATH, build_of, main


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
                    "build": build_of(r.headers.get("X-OWA-Version"), body),
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


if __name__ == "__main__":
    main(scan, __doc__)
