"""Scanning one task of a census with the scan engine, writing to the shared store.

One task is a range of positions of the census's permutation.  It runs exactly as a slice
of `exwatch scan` does (scan/runner.py `run_slice`, the same per-host probe factory, the same
admission control), except that:

* records go to the store through the census book, fenced by the attempt number, in the
  writer's usual batches (each batch is one COPY and updates the task's progress);
* new connections are paced by the census's global rate budget, not a local limiter;
* an attempt that follows an earlier one skips the targets that attempt stored;
* the opt-in checks run on a host only when the census's store lets this attempt claim it
  (store/census.py `claim_check`): once per host per census, however often a task runs
  again; what they found is kept with the claim before the record is handed on;
* a watcher stops the slice when the attempt was superseded, the census cancelled, the
  store failed, or the task deadline passed; what was stored stays stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exwatch.census.budget import RateBudget
from exwatch.census.plan import CensusSettings, task_targets
from exwatch.errors import StoreError
from exwatch.scan.job import _ProbeFactory
from exwatch.scan.loop import install_loop_policy
from exwatch.scan.runner import RunOptions, Tally, Writer, run_slice
from exwatch.scan.targets import TargetSpace
from exwatch.store.census import CensusBook, Claim

if TYPE_CHECKING:
    from exwatch.scan.host import ClaimAnswer

log = logging.getLogger(__name__)

_WATCH = 0.2  # seconds between the watcher's looks at the attempt's state

Probe = Callable[[str, int, str | None], Awaitable[dict[str, Any]]]


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

    def fail(self, error: str) -> None:
        """The store failed outside a write: stop the attempt (its batches are refused)."""
        if self.stop not in ("superseded", "failed"):
            self.stop, self.error = "failed", error


class _CheckClaims:
    """One attempt's side of the census's once-per-host checks, on a connection of its own
    (the writer's is inside a batch's transaction at any moment)."""

    def __init__(self, book: CensusBook, scan_id: str, task: int, sink: _TaskSink) -> None:
        self.book = book
        self.scan_id = scan_id
        self.task = task
        self.sink = sink
        self.run = uuid.uuid4().hex  # this attempt; attempt numbers restart on `census retry`
        self.fresh: set[tuple[str, int]] = set()  # hosts this attempt checks itself

    async def claim(self, ip: str, port: int) -> ClaimAnswer:
        try:
            answer = await asyncio.to_thread(
                self.book.claim_check, self.scan_id, ip, port, self.task, self.run
            )
        except StoreError as exc:
            self.sink.fail(f"claiming a host for the checks: {exc}")
            return False
        if answer is True:
            self.fresh.add((ip, port))
        return answer

    def keeping(self, probe: Probe) -> Probe:
        """`probe`, keeping the checks' result with the claim before the record goes on."""

        async def kept(ip: str, port: int, hostname: str | None) -> dict[str, Any]:
            record = await probe(ip, port, hostname)
            checks = record.get("checks")
            if (ip, port) in self.fresh and isinstance(checks, dict) and checks.get("ran"):
                self.fresh.discard((ip, port))
                try:
                    await asyncio.to_thread(
                        self.book.keep_check, self.scan_id, ip, port, self.run, checks
                    )
                except StoreError as exc:
                    self.sink.fail(f"keeping a host's check results: {exc}")
            return record

        return kept


def _paced(probe: Probe, budget: RateBudget) -> Probe:
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
    side: CensusBook | None = None,
) -> Outcome:
    """Scan the claimed range to its end (or until stopped); never raises for what the
    network or the store does, only for bugs.  `side`: a book on a second connection of the
    same store, for the checks' claims (needed when the census runs checks)."""
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
    claims = None
    if settings.checks:
        if side is None:
            raise ValueError("a census with checks needs a second store connection (side)")
        claims = _CheckClaims(side, scan_id, task, sink)
    probe: Probe = _ProbeFactory(settings.job(), space, claims.claim if claims else None)()
    if claims is not None:
        probe = claims.keeping(probe)
    if budget is not None:
        # Around the whole host, checks included: one slot per target, as `scan`'s limiter.
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
