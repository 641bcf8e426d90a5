"""Admission control: keep the event loop responsive so timeouts measure the network.

On loopback more concurrency only costs memory; on the internet, slow and silent hosts need
thousands of sockets in flight.  Past what the CPU can serve, work queues inside the event
loop, and a live host whose TLS handshake waited for the CPU looks like a timeout (measured:
a third of live hosts at 5,000 sockets in flight).  Two defences:

1. The number of targets in flight adapts to event-loop lag (AIMD): it shrinks when the loop
   falls behind and grows back while the loop keeps up and the limit is in use.
2. Lag is accumulated as a debt clock; an attempt that timed out while the loop owed more
   than a fraction of its timeout is not trusted and is retried once.
"""

from __future__ import annotations

import asyncio
import os
import resource
from dataclasses import dataclass

# Descriptors a scanning process keeps for other things: the store, its WAL and temporary
# batch files, the JSON lines file, the resolver's threads, pipes to workers.
_RESERVED_FDS = 64


def socket_budget() -> int:
    """How many sockets one scanning process may hold at once.

    Raises the soft open-files limit to the hard one first (often 1,024 against 1,048,576).
    A scan above this number would not be refused by the network but by the kernel
    (EMFILE), and record live hosts as `unknown-error`: the caller caps its concurrency here.
    """
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    except (OSError, ValueError):
        soft = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024
    return max(1, int(soft) - _RESERVED_FDS)


@dataclass(slots=True)
class AdmissionStats:
    limit: int
    in_flight: int
    lag_ms: float
    max_lag_ms: float
    shrinks: int
    retries: int


class Admission:
    """A concurrency limit that follows event-loop lag."""

    def __init__(
        self,
        ceiling: int,
        *,
        floor: int = 16,
        start: int | None = None,
        interval: float = 0.05,
        lag_high: float = 0.030,
        lag_low: float = 0.008,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.floor = min(floor, self.ceiling)
        self.limit = min(self.ceiling, start or max(self.floor, min(self.ceiling, 256)))
        self.interval = interval
        self.lag_high = lag_high
        self.lag_low = lag_low
        self.in_flight = 0
        self.lag = 0.0  # smoothed, seconds
        self.max_lag = 0.0
        self.debt = 0.0  # total lag seconds since start: the backlog clock
        self.shrinks = 0
        self.retries = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - before - self.interval)
            self.debt += lag
            self.lag = 0.7 * self.lag + 0.3 * lag
            self.max_lag = max(self.max_lag, lag)
            if self.lag > self.lag_high and self.limit > self.floor:
                self.limit = max(self.floor, int(self.limit * 0.75))
                self.shrinks += 1
            elif self.lag < self.lag_low and self.in_flight >= self.limit * 0.9:
                self.limit = min(self.ceiling, self.limit + max(1, self.limit // 16))
                self._changed.set()

    async def acquire(self) -> None:
        while self.in_flight >= self.limit:
            self._changed.clear()
            await self._changed.wait()
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._changed.set()

    def stats(self) -> AdmissionStats:
        return AdmissionStats(
            self.limit,
            self.in_flight,
            self.lag * 1000,
            self.max_lag * 1000,
            self.shrinks,
            self.retries,
        )


__all__ = ["Admission", "AdmissionStats", "socket_budget"]
