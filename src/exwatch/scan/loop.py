"""What the scan job and its worker processes share: the event-loop policy and the stop flag
(kept apart from job.py so that workers.py need not import the job that starts it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(slots=True)
class StopSignal:
    """The first stop signal received; later ones are ignored while the scan saves its work
    (a second cancellation in the middle of the final flush would lose records and print a
    CancelledError traceback)."""

    signum: int | None = None


def install_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on every platform); asyncio works, slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


__all__ = ["StopSignal", "install_loop_policy"]
