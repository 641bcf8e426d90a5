"""A straightforward httpx-based Exchange build scanner, as a typical user would write it.

    .venv/bin/python bench/peers_httpx.py LIST --port 28443 [--concurrency 500] -o out.jsonl

Peer for `bench/peers.py`: asyncio + one `httpx.AsyncClient(verify=False)`, a semaphore for
concurrency, `GET /owa/auth/logon.aspx` on every address in LIST (one IPv4 per line), the
build from `X-OWA-Version` or the `/owa/auth/<build>/` resource paths, one JSON line per
address.  Deliberately plain: no uvloop, no tuning beyond turning keep-alive off (each
host is a new connection anyway).  Prints a one-line JSON summary with its scan-loop time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

PATH = "/owa/auth/logon.aspx"
BODY_BUILD = re.compile(r"/owa/auth/(\d+\.\d+\.\d+(?:\.\d+)?)/", re.IGNORECASE)


def build_of(headers: httpx.Headers, body: str) -> str | None:
    header = headers.get("x-owa-version")
    if header:
        return str(header)
    m = BODY_BUILD.search(body)
    return m.group(1) if m else None


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
            "build": build_of(r.headers, r.text),
            "server": r.headers.get("server"),
        }


async def scan(ips: list[str], port: int, concurrency: int, seconds: float) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(verify=False, timeout=seconds, limits=limits) as client:  # noqa: S501 (scanner: self-signed certs are the norm)
        return await asyncio.gather(*(probe(client, sem, ip, port) for ip in ips))


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
