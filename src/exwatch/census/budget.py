"""The global rate budget: one schedule of connection slots shared by every worker.

`--rate R` of a census means R new connections per second in all, however many workers on
however many machines scan it.  The census row in the store holds the time of the next free
slot; a worker process leases a short run of slots at a time (about 0.2 s worth), which moves
that time on for everyone, and spends them evenly, one per target.  Slots are never handed
out twice, so the sum over workers cannot exceed R; a lease a worker cannot use up (its task
ended) is simply lost, which errs on the slow side.  Times are the database server's, so
machines with skewed clocks still share one schedule.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

# How much of the schedule one lease takes: short enough that a lost lease wastes little and
# several workers interleave finely, long enough that leasing costs a few queries a second.
LEASE_SECONDS = 0.2

Lease = Callable[[int, float], tuple[float, float]]  # (slots, interval) -> (first, server now)


class RateBudget:
    """Paces one process's new connections on the census's shared schedule."""

    def __init__(self, rate: float, lease: Lease) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.chunk = max(1, round(rate * LEASE_SECONDS))
        self._lease = lease
        self._slots: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.leases = 0

    async def acquire(self) -> None:
        """Wait for this process's next slot of the shared schedule."""
        async with self._lock:
            if not self._slots:
                first, server_now = await asyncio.to_thread(self._lease, self.chunk, self.interval)
                self.leases += 1
                # Server time -> this process's monotonic clock (a query's latency off).
                local = time.monotonic() + (first - server_now)
                self._slots.extend(local + i * self.interval for i in range(self.chunk))
            slot = self._slots.popleft()
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


__all__ = ["LEASE_SECONDS", "RateBudget"]
