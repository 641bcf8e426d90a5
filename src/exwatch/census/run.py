"""Scanning one task of a census with the scan engine, writing to the shared store.

One task is a range of positions of the census's permutation.  It runs exactly as a slice
of `exwatch scan` does (scan/runner.py `run_slice`, the same per-host probe factory, the same
admission control), except that:

* records go to the store through the census book, fenced by the attempt number, in the
  writer's usual batches (each batch is one COPY and updates the task's progress);
* new connections are paced by the census's global rate budget, not a local limiter;
* an attempt that follows an earlier one skips the targets that attempt stored;
* a watcher stops the slice when the attempt was superseded, the census cancelled, the
  store failed, or the task deadline passed; what was stored stays stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from exwatch.census.budget import RateBudget
from exwatch.census.plan import CensusSettings, task_targets
from exwatch.errors import StoreError
from exwatch.scan.job import _ProbeFactory
from exwatch.scan.loop import install_loop_policy
from exwatch.scan.runner import RunOptions, Tally, Writer, run_slice
from exwatch.scan.targets import TargetSpace
from exwatch.store.census import CensusBook, Claim

log = logging.getLogger(__name__)

_WATCH = 0.2  # seconds between the watcher's looks at the attempt's state


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: done | cancelled | superseded | failed (with the error)."""

    state: str
    stored: int  # results this attempt stored
    skipped: int  # targets an earlier attempt had stored
    seconds: float
    error: str | None = None


class _TaskSink:
    """The writer's store for one attempt: fenced batches; never raises into the writer.

    A failure sets `stop`, and the watcher ends the slice; records not stored are scanned
    again by the next attempt.
    """

    def __init__(self, book: CensusBook, scan_id: str, task: int, attempt: int) -> None:
        self.book = book
        self.scan_id = scan_id
        self.task = task
        self.attempt = attempt
        self.stop: str | None = None
        self.error: str | None = None
        self.stored = 0

    def append(self, records: list[dict[str, Any]]) -> int:
        if self.stop in ("superseded", "failed"):
            return 0
        counts = Tally()
        for record in records:
            counts.count(record)
        try:
            state, stored = self.book.write(
                self.scan_id, self.task, self.attempt, records, counts.exchange, counts.vulnerable
            )
        except StoreError as exc:
            self.stop, self.error = "failed", f"storing results: {exc}"
            return 0
        if state != "ok":
            self.stop = state
        self.stored += stored
        return stored


def _paced(
    probe: Callable[[str, int, str | None], Awaitable[dict[str, Any]]], budget: RateBudget
) -> Callable[[str, int, str | None], Awaitable[dict[str, Any]]]:
    async def paced(ip: str, port: int, hostname: str | None) -> dict[str, Any]:
        await budget.acquire()
        return await probe(ip, port, hostname)

    return paced


def run_task(
    book: CensusBook,
    scan_id: str,
    task: int,
    claim: Claim,
    settings: CensusSettings,
    space: TargetSpace,
    *,
    deadline: float,
    budget: RateBudget | None = None,
) -> Outcome:
    """Scan the claimed range to its end (or until stopped); never raises for what the
    network or the store does, only for bugs."""
    started = time.monotonic()
    done: set[tuple[str, int]] | None = None
    if claim.resumed:
        addresses: list[tuple[str, int]] = []
        names: list[tuple[str, int]] = []
        for t in task_targets(space, settings.seed, claim.start, claim.stop):
            if t.ip is not None:
                addresses.append((t.ip, t.port))
            elif t.hostname is not None:
                names.append((t.hostname, t.port))
        try:
            done = book.stored_targets(scan_id, addresses, names)
        except StoreError as exc:
            return Outcome("failed", 0, 0, time.monotonic() - started, str(exc))
    sink = _TaskSink(book, scan_id, task, claim.attempt)
    tally = Tally()
    options = RunOptions(concurrency=settings.concurrency, rate=None, timeout=settings.timeout)
    probe = _ProbeFactory(settings.job(), space)()
    if budget is not None:
        probe = _paced(probe, budget)
    reason: str | None = None

    async def main() -> None:
        nonlocal reason
        writer = Writer(None, sink)
        targets = task_targets(space, settings.seed, claim.start, claim.stop)
        run = asyncio.create_task(
            run_slice(targets, probe, writer, scan_id, options, tally, done or None)
        )
        stop_at = started + deadline
        while not run.done():
            await asyncio.wait({run}, timeout=_WATCH)
            if run.done() or reason is not None:
                continue  # cancelled once only: a second cancel would cut its last flush
            if sink.stop is not None:
                reason = sink.stop
                run.cancel()
            elif time.monotonic() > stop_at:
                reason = "deadline"
                run.cancel()
        try:
            await run
        except asyncio.CancelledError:
            # Our cancel can reach the slice when it is already closing (every target
            # done, its last batch on its way to the store): the writer still finishes a
            # write it has begun, and what it had not begun the next attempt scans again.
            current = asyncio.current_task()
            if reason is None or (current is not None and current.cancelling()):
                raise
        reason = reason or sink.stop  # the last flush may have learnt something too

    install_loop_policy()
    with asyncio.Runner() as runner:
        runner.run(main())
    seconds = time.monotonic() - started
    skipped = len(done) if done else 0
    if reason == "deadline":
        error = (
            f"the task ran past its deadline of {deadline:g} s (stored {sink.stored:,} results;"
            " the next attempt scans the rest): make tasks smaller (--task-size) or give"
            " workers more room (--task-deadline)"
        )
        return Outcome("failed", sink.stored, skipped, seconds, error)
    if reason == "failed":
        return Outcome("failed", sink.stored, skipped, seconds, sink.error)
    return Outcome(reason or "done", sink.stored, skipped, seconds)


__all__ = ["Outcome", "run_task"]
