"""The Celery task a worker runs: claim a census task, scan its range, record the outcome.

A message says only (census id, task number); everything else comes from the store the
worker was started with (`exwatch worker --db`), so credentials never travel through the
broker and a message cannot make a worker scan anything the census did not submit.

Each pool process keeps its own store connections (opened after the fork), the census
settings and target space it has met (built once per census), and, for a census with a
rate or checks, a second connection for the rate budget's leases and the checks' claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exwatch.census.broker import TASK_NAME, TimeLimits
from exwatch.census.budget import RateBudget
from exwatch.census.plan import CensusSettings
from exwatch.census.run import Outcome, run_task
from exwatch.errors import ExwatchError, UsageError
from exwatch.net.transport import client_class
from exwatch.scan.targets import TargetSpace
from exwatch.store import Store, open_store
from exwatch.store.census import Census, CensusBook, Refusal

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("exwatch.census")

_RETRY_BACKOFF = (2, 5, 15, 30, 60)  # seconds before a failed attempt's task runs again


@dataclass
class _Process:
    """What one pool process keeps between tasks."""

    pid: int
    stores: list[Store] = field(default_factory=list)
    book: CensusBook | None = None
    side_book: CensusBook | None = None
    censuses: dict[str, tuple[Census, CensusSettings, TargetSpace]] = field(default_factory=dict)

    def close(self) -> None:
        for store in self.stores:
            # Closing a connection that already broke may raise: it is gone either way.
            with contextlib.suppress(Exception):
                store.close()
        self.stores.clear()
        self.book = self.side_book = None


_process: _Process | None = None


def _state() -> _Process:
    global _process
    if _process is None or _process.pid != os.getpid():
        # A fork inherits the parent's state object but must not use its connections.
        _process = _Process(os.getpid())
    return _process


def reset_process() -> None:
    """Forget connections and caches (a new pool process, or after a store failure)."""
    state = _state()
    state.close()
    state.censuses.clear()


def _book(db: str) -> CensusBook:
    state = _state()
    if state.book is None:
        store = open_store(db)
        state.stores.append(store)
        state.book = CensusBook(store)
    return state.book


def _side_book(db: str) -> CensusBook:
    # Leases and check claims run in threads while the task's writes run in another, inside
    # a transaction: their own connection (each of their statements is one autocommit
    # statement, and psycopg serialises the threads' use of it).
    state = _state()
    if state.side_book is None:
        store = open_store(db)
        state.stores.append(store)
        state.side_book = CensusBook(store)
    return state.side_book


def _census(book: CensusBook, scan_id: str) -> Census | None:
    state = _state()
    known = state.censuses.get(scan_id)
    if known is not None:
        return known[0]
    return book.census(scan_id)


def _prepared(census: Census) -> tuple[CensusSettings, TargetSpace]:
    """The census's settings and target space, built once per process (a long target list
    takes a moment to merge)."""
    state = _state()
    known = state.censuses.get(census.scan_id)
    if known is None:
        settings = CensusSettings.from_json(census.settings)
        client_class(settings.transport)  # not installed here: the task fails saying so
        known = (census, settings, settings.space())
        state.censuses[census.scan_id] = known
    return known[1], known[2]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def execute(db: str, worker_deadline: float, scan_id: str, task: int) -> tuple[str, Outcome | None]:
    """Run one delivery of a task; returns ("done" | "cancelled" | "superseded" | "retry"
    | "parked" | "skipped: why", the attempt's outcome).  Raises StoreError when the store
    cannot be reached at all (the caller retries the message later)."""
    book = _book(db)
    census = _census(book, scan_id)
    if census is None:
        return f"skipped: no census {scan_id} in {book.store.location}", None
    claim = book.claim(scan_id, task, worker_name())
    if isinstance(claim, Refusal):
        return f"skipped: {claim.reason}", None
    try:
        settings, space = _prepared(census)
    except UsageError as exc:  # settings no exwatch can scan (e.g. from a newer version)
        return book.fail(scan_id, task, claim.attempt, f"census settings: {exc}"), None
    if census.deadline > worker_deadline:
        error = (
            f"the census's task deadline ({census.deadline:g} s) is longer than this worker's"
            f" --task-deadline ({worker_deadline:g} s): the broker would hand a running task"
            f" to another worker; start workers with --task-deadline {census.deadline:g}"
        )
        return book.fail(scan_id, task, claim.attempt, error), None
    budget = None
    side = _side_book(db) if census.rate or settings.checks else None
    if census.rate and side is not None:
        lease = side.lease
        budget = RateBudget(census.rate, lambda n, gap: lease(scan_id, n, gap))
    try:
        outcome = run_task(
            book,
            scan_id,
            task,
            claim,
            settings,
            space,
            deadline=census.deadline,
            budget=budget,
            side=side,
        )
    except (Exception, asyncio.CancelledError) as exc:  # a bug costs an attempt, not the task
        detail = "".join(traceback.format_exception(exc)[-6:])
        outcome = Outcome("failed", 0, 0, 0.0, f"{type(exc).__name__}: {exc}\n{detail}")
    if outcome.state == "superseded":
        return "superseded", outcome
    if outcome.state in ("done", "cancelled"):
        if not book.finish(scan_id, task, claim.attempt, outcome.state):
            return "superseded", outcome
        return outcome.state, outcome
    return book.fail(scan_id, task, claim.attempt, outcome.error or "failed"), outcome


def backoff(retries: int, worker_deadline: float) -> float:
    """Seconds before a message comes back: growing, but well inside the broker's visibility
    timeout (a message waiting for its countdown is held unacknowledged)."""
    delay = _RETRY_BACKOFF[min(retries, len(_RETRY_BACKOFF) - 1)]
    return min(float(delay), TimeLimits(worker_deadline).visibility / 4)


def register(app: Celery, db: str, worker_deadline: float) -> Any:
    """Register the census task on a worker's app; returns the task."""

    @app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)
    def scan_range(self: Any, scan_id: str, task: int) -> str:
        try:
            verdict, outcome = execute(db, worker_deadline, scan_id, int(task))
        except Exception as exc:
            # The store cannot be reached (or, a bug, something else broke outside the
            # scan): the message must not be lost, so it comes back later.  A claimed task
            # counts the attempt when it does, and is parked when they run out.
            reset_process()
            delay = backoff(int(self.request.retries or 0), worker_deadline)
            if isinstance(exc, ExwatchError):
                log.warning("census %s task %s: %s; again in %s s", scan_id, task, exc, delay)
            else:
                log.exception("census %s task %s: again in %s s", scan_id, task, delay)
            raise self.retry(countdown=delay, max_retries=None) from None
        if outcome is not None:
            log.info(
                "census %s task %s: %s, %d results stored in %.1f s%s%s",
                scan_id,
                task,
                verdict,
                outcome.stored,
                outcome.seconds,
                f" ({outcome.skipped} stored before)" if outcome.skipped else "",
                f": {outcome.error.splitlines()[0]}" if outcome.error else "",
            )
        else:
            log.info("census %s task %s: %s", scan_id, task, verdict)
        if verdict == "retry":
            delay = backoff(int(self.request.retries or 0), worker_deadline)
            raise self.retry(countdown=delay, max_retries=None)
        return verdict

    return scan_range


__all__ = ["execute", "register", "reset_process", "worker_name"]
