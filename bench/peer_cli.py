"""What the two Python peer scanners share: the logon-page build rule and the command line.

Each peer (`peers_httpx.py`, `peers_aiohttp.py`) keeps its own client code, written the way
a typical user would; this module only gives both the same target list, output and summary,
so `bench/peers.py` reads them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

PATH = "/owa/auth/logon.aspx"
BODY_BUILD = re.compile(r"/owa/auth/(\d+\.\d+\.\d+(?:\.\d+)?)/", re.IGNORECASE)

Scan = Callable[[list[str], int, int, float], Coroutine[Any, Any, list[dict[str, Any]]]]
Run = Callable[[Coroutine[Any, Any, list[dict[str, Any]]]], list[dict[str, Any]]]


def build_of(header: str | None, body: str) -> str | None:
    """X-OWA-Version when present, else the build in the logon page's resource paths."""
    if header:
        return header
    m = BODY_BUILD.search(body)
    return m.group(1) if m else None


def main(scan: Scan, doc: str | None, run: Run = asyncio.run) -> None:
    """`SCRIPT LIST --port N [--concurrency N] [--timeout S] -o out.jsonl`: run `scan`
    over the addresses in LIST (on the event loop `run` starts), write one JSON line per
    address, print a JSON summary."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("list", type=Path)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    ips = [line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    t0 = time.perf_counter()
    results = run(scan(ips, args.port, args.concurrency, args.timeout))
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
