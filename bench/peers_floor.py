"""The Python floor as a peer: `bench/floor.py`'s minimal one-GET client over a target list.

    .venv/bin/python bench/peers_floor.py LIST --port 28443 [--concurrency 500] -o out.jsonl

So that one run of `bench/peers.py` gives exwatch's CPU per host as a multiple of the
floor's (issue 19's targets) beside the peers, measured the same way as every other
client there (a child process pinned to CPU 0, its fixed start-up cost taken out).  The
client is floor.py's own `_one` (uvloop streams, TLS without verification, one GET of the
logon page with `Connection: close`, the head and at most 8 KB, one regex), not a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import uvloop
from floor import _one  # bench/, beside this script
from peer_cli import main


async def scan(ips: list[str], port: int, concurrency: int, seconds: float) -> list[dict[str, Any]]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    gate = asyncio.Semaphore(concurrency)

    async def each(ip: str) -> dict[str, Any]:
        async with gate:
            row: dict[str, Any] = {"ip": ip, "port": port, "ok": False}
            with contextlib.suppress(
                OSError, TimeoutError, asyncio.IncompleteReadError, ValueError
            ):
                build = await _one(ip, port, ctx)  # as floor.py: only the connect is bounded
                row.update(ok=True, build=build.decode() if build else None)
            return row

    return await asyncio.gather(*(each(ip) for ip in ips))


if __name__ == "__main__":
    main(scan, __doc__, uvloop.run)
