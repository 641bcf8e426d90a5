"""A straightforward httpx-based Exchange build scanner, as a typical user would write it.

    .venv/bin/python bench/peers_httpx.py LIST --port 28443 [--concurrency 500] -o out.jsonl

Peer for `bench/peers.py`: asyncio + one `httpx.AsyncClient(verify=False)`, a semaphore for
concurrency, `GET /owa/auth/logon.aspx` on every address in LIST (one IPv4 per line), the
build from `X-OWA-Version` or the `/owa/auth/<build>/` resource paths, one JSON line per
address.  Deliberately plain: no uvloop, no tuning beyond turning keep-alive off (each
host is a new connection anyway).  Prints a one-line JSON summary with its scan-loop time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from peer_cli import PATH, build_of, main


async def probe(
    client: httpx.AsyncClient, sem: asyncio.Semaphore, ip: str, port: int
) -> dict[str, Any]:
    async with sem:
        try:
            r = await client.get(f"https://{ip}:{port}{PATH}")
        except httpx.HTTPError as exc:
            return {"ip": ip, "port": port, "ok": False, "error": type(exc).__name__}
        return {
            "ip": ip,
            "port": port,
            "ok": True,
            "status": r.status_code,
            "build": build_of(r.headers.get("x-owa-version"), r.text),
            "server": r.headers.get("server"),
        }


async def scan(ips: list[str], port: int, concurrency: int, seconds: float) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(verify=False, timeout=seconds, limits=limits) as client:  # noqa: S501 (scanner: self-signed certs are the norm)
        return await asyncio.gather(*(probe(client, sem, ip, port) for ip in ips))


if __name__ == "__main__":
    main(scan, __doc__)
