"""Admission control: the in-flight limit follows event-loop lag, and a timeout that the
loop's own backlog may have caused is retried once instead of being recorded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from exwatch.scan.admission import Admission
from exwatch.scan.runner import RunOptions, Tally, Writer, run_targets
from exwatch.scan.targets import Target


def test_limit_shrinks_when_the_loop_lags_and_grows_back() -> None:
    async def main() -> tuple[int, int, int]:
        gate = Admission(1000, start=512, interval=0.02)
        gate.start()
        gate.in_flight = gate.limit  # the limit is in use
        start = gate.limit
        for _ in range(10):  # hog the loop: every tick lags by ~40 ms
            time.sleep(0.04)  # noqa: ASYNC251  (blocking on purpose: a starved loop)
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        low = gate.limit
        gate.in_flight = gate.limit
        for _ in range(60):  # an idle loop with the limit in use: it grows again
            await asyncio.sleep(0.02)
            gate.in_flight = gate.limit
        gate.stop()
        return start, low, gate.limit

    start, low, end = asyncio.run(main())
    assert low < start
    assert end > low


def test_timeout_under_loop_backlog_is_retried_not_recorded() -> None:
    calls: dict[str, int] = {}

    async def scan_host(ip: str, port: int, hostname: str | None) -> dict[str, Any]:
        calls[ip] = calls.get(ip, 0) + 1
        if calls[ip] == 1:
            # the scanner itself stalls the loop while this attempt "waits"
            time.sleep(0.3)  # noqa: ASYNC251
            await asyncio.sleep(0.06)
            return {"ip": ip, "port": port, "status": "io-timeout"}
        return {"ip": ip, "port": port, "status": "success"}

    async def main() -> Tally:
        writer = Writer(None, None)
        tally = Tally()
        gate = Admission(10, interval=0.01)
        targets = iter([Target("127.0.0.2", None, 443, 0)])
        await run_targets(
            targets, scan_host, writer, "s", RunOptions(timeout=0.5), tally, admission=gate
        )
        await writer.close()
        assert gate.retries == 1
        return tally

    tally = asyncio.run(main())
    assert calls == {"127.0.0.2": 2}
    assert dict(tally.statuses) == {"success": 1}


def test_real_timeout_is_recorded_once() -> None:
    calls = 0

    async def scan_host(ip: str, port: int, hostname: str | None) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # the network was slow; the loop was idle
        return {"ip": ip, "port": port, "status": "io-timeout"}

    async def main() -> Tally:
        writer = Writer(None, None)
        tally = Tally()
        targets = iter([Target("127.0.0.2", None, 443, 0)])
        await run_targets(targets, scan_host, writer, "s", RunOptions(timeout=0.05), tally)
        await writer.close()
        return tally

    tally = asyncio.run(main())
    assert calls == 1
    assert dict(tally.statuses) == {"io-timeout": 1}


def test_closing_the_writer_never_overlaps_store_writes() -> None:
    """A flush cancelled mid-write (the 1 s tick, at close) must finish before the next one:
    the DuckDB connection refuses concurrent calls."""

    class SlowStore:
        def __init__(self) -> None:
            self.active = 0
            self.overlaps = 0
            self.rows = 0

        def append(self, records: list[dict[str, Any]]) -> int:
            self.active += 1
            if self.active > 1:
                self.overlaps += 1
            time.sleep(0.2)  # a slow disk
            self.rows += len(records)
            self.active -= 1
            return len(records)

    store = SlowStore()

    async def main() -> None:
        writer = Writer(None, store, interval=0.01)
        writer.start()
        writer.add({"ip": "127.0.0.2"})
        await asyncio.sleep(0.05)  # the tick is now inside store.append
        writer.add({"ip": "127.0.0.3"})
        await writer.close()

    asyncio.run(main())
    assert store.overlaps == 0
    assert store.rows == 2
