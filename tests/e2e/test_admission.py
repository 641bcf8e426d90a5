"""Admission control: the in-flight limit follows event-loop lag, and a timeout that the
loop's own backlog may have caused is retried once instead of being recorded."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
import uvloop

from exwatch.net.client import _connect
from exwatch.net.wire import Wire
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


def _one_target(scan_host: Any) -> tuple[Tally, int]:
    """Run one target through the runner with a fast-ticking admission gate: the tally and
    how many attempts the lag debt sent back."""

    async def main() -> tuple[Tally, int]:
        writer = Writer(None, None)
        tally = Tally()
        gate = Admission(10, interval=0.01)
        targets = iter([Target("127.0.0.2", None, 443, 0)])
        await run_targets(
            targets, scan_host, writer, "s", RunOptions(timeout=0.5), tally, admission=gate
        )
        await writer.close()
        return tally, gate.retries

    return asyncio.run(main())


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

    tally, retries = _one_target(scan_host)
    assert retries == 1
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


def test_connect_timeout_under_loop_backlog_is_recorded_not_retried() -> None:
    """The client lets the loop poll once more before it reports a connect timeout
    (net/client._ConnectDeadline), so a connect timeout under lag is an address that never
    answered: no second slot."""
    calls: dict[str, int] = {}

    async def scan_host(ip: str, port: int, hostname: str | None) -> dict[str, Any]:
        calls[ip] = calls.get(ip, 0) + 1
        time.sleep(0.3)  # noqa: ASYNC251  (the scanner stalls the loop meanwhile)
        await asyncio.sleep(0.06)
        return {"ip": ip, "port": port, "status": "connection-timeout"}

    tally, retries = _one_target(scan_host)
    assert retries == 0
    assert calls == {"127.0.0.2": 1}
    assert dict(tally.statuses) == {"connection-timeout": 1}


def _full_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A loopback listener whose accept queue is full: it drops new SYNs, so a connect to
    it waits for the kernel's SYN retransmission (about 1 s later) like a silent address."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    queued: list[socket.socket] = []
    for _ in range(8):  # fill the accept queue until a handshake no longer completes
        try:
            queued.append(socket.create_connection(server.getsockname(), timeout=0.3))
        except TimeoutError:
            return server, queued
    server.close()
    pytest.fail("the accept queue never filled: no silent address to test with")


async def _connect_through_a_stall(server: socket.socket) -> None:
    """Connect with a 1.2 s timeout while an I/O callback stalls the loop for 1.6 s: the
    stall ends after the timer is due, and after the retransmitted SYN (~1 s) had its
    answer if the listener had room by then.  After an I/O-phase stall uvloop runs due
    timers before it polls the sockets again: the timer speaks first."""
    loop = asyncio.get_running_loop()
    wake, stall_on = socket.socketpair()
    wire = Wire(loop, 1024)

    def stall() -> None:
        loop.remove_reader(stall_on)
        time.sleep(1.6)  # a starved loop, on purpose

    ip, port = server.getsockname()
    try:
        loop.add_reader(stall_on, stall)
        task = asyncio.create_task(_connect(loop, wire, ip, port, 1.2))
        await asyncio.sleep(0)  # the first SYN is sent (and dropped)
        wake.send(b"x")
        transport = await task
        assert wire.transport is transport
        transport.abort()
    finally:
        wake.close()
        stall_on.close()


def test_a_connect_the_loop_was_too_busy_to_see_is_a_connection() -> None:
    """The listener makes room while the loop is stalled: the retransmitted SYN completes
    the handshake before the stall ends.  The kernel says connected, so is the client."""
    server, queued = _full_listener()
    room = threading.Timer(0.3, lambda: server.accept()[0].close())
    room.start()
    try:
        uvloop.run(_connect_through_a_stall(server))
    finally:
        room.join()
        for s in queued:
            s.close()
        server.close()


def test_an_address_that_never_answers_still_times_out() -> None:
    """The same stall, and no room: the kernel says still connecting, so a timeout."""
    server, queued = _full_listener()
    try:
        with pytest.raises(TimeoutError):
            uvloop.run(_connect_through_a_stall(server))
    finally:
        for s in queued:
            s.close()
        server.close()
