"""Pacing for the scan loop: a global rate limit on new connections."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """At most `rate` acquisitions per second across all workers (None or 0: unlimited).

    Slots are handed out on a schedule rather than by a refilling bucket, so a burst of
    waiting workers is spread evenly instead of released at once.
    """

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    async def acquire(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(self._next, now)
        self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            await asyncio.sleep(delay)


__all__ = ["RateLimiter"]
