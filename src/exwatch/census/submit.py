"""`exwatch census submit`: record a census in the shared store and enqueue its tasks.

Order matters for "loses nothing": the broker is checked first (nothing is recorded for a
census that cannot be enqueued), then the census, its scan and all its tasks are recorded in
one transaction, then the tasks are published.  If publishing stops half way (the broker went
away), the tasks not published stay `pending` in the store and `exwatch census retry
--pending` publishes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exwatch import __version__
from exwatch.census.broker import (
    DEFAULT_QUEUE,
    TASK_NAME,
    TimeLimits,
    celery_app,
    check_broker,
    display_url,
)
from exwatch.census.plan import CensusSettings, split
from exwatch.errors import BrokerError, UsageError
from exwatch.scan.job import ScanJob, probe_ids
from exwatch.store import Store, open_store, parse_location
from exwatch.store.census import Census, CensusBook
from exwatch.store.rows import valid_scan_id

if TYPE_CHECKING:
    from celery import Celery

DEFAULT_TASK_SIZE = 16_384
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Submission:
    scan_id: str
    targets: int
    tasks: int
    queue: str
    broker: str  # without its password
    task_size: int
    deadline: float


def require_postgres(db: str) -> None:
    """A census (and a worker) needs PostgreSQL; say why a DuckDB path will not do."""
    if parse_location(db).backend != "postgresql":
        raise UsageError(
            f"--db {db}: a census needs a PostgreSQL store (postgresql://user@host/database):"
            " its workers, on several machines, write one store at once, and a DuckDB file"
            " takes one writer process at a time"
        )


def submit(
    job: ScanJob,
    *,
    broker: str,
    db: str,
    queue: str = DEFAULT_QUEUE,
    task_size: int = DEFAULT_TASK_SIZE,
    deadline: float,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    on_published: Callable[[int, int], None] | None = None,
) -> Submission:
    """Record the census of `job` and publish its tasks; returns what was submitted."""
    require_postgres(db)
    settings = CensusSettings.from_job(job)
    space = settings.space()  # refuses bad targets, reserved ranges, bad exclusion lines
    probe_ids(job.extra_probes)
    CensusSettings.from_json(settings.to_json())  # as workers read them: known checks, transport
    if space.count == 0:
        raise UsageError("nothing to scan: every target is excluded or reserved")
    if job.scan_id is not None and not valid_scan_id(job.scan_id):
        raise UsageError(f"--scan-id {job.scan_id!r}: letters, digits and . _ : @ + - only")
    if job.rate and min(task_size, space.count) / job.rate > deadline / 2:
        raise UsageError(
            f"a task of {task_size:,} targets takes {task_size / job.rate:,.0f} s at --rate"
            f" {job.rate:g}, too close to the task deadline ({deadline:g} s): lower"
            " --task-size or raise --task-deadline"
        )
    scan_id = job.scan_id or job.census_id()
    positions = space.permutation(job.seed).positions
    ranges = split(positions, task_size)
    app = celery_app(broker, deadline=deadline)
    check_broker(app)
    census = Census(
        scan_id=scan_id,
        queue=queue,
        broker=display_url(broker),
        settings=settings.to_json(),
        status="queued",
        targets=space.count,
        tasks=len(ranges),
        task_size=task_size,
        deadline=deadline,
        max_attempts=max_attempts,
        rate=job.rate,
    )
    params = job.params()
    params["census"] = {"queue": queue, "tasks": len(ranges), "task_size": task_size}
    with open_store(db) as store:
        book = CensusBook(store)
        with store.transaction():
            book.create(census, ranges, positions)
            store.start_scan(
                params, scan_id=scan_id, part="1/1", targets=space.count, tool_version=__version__
            )
        publish(app, census, range(len(ranges)), on_published)
    return Submission(scan_id, space.count, len(ranges), queue, census.broker, task_size, deadline)


def publish(
    app: Celery,
    census: Census,
    tasks: Sequence[int],
    on_published: Callable[[int, int], None] | None = None,
) -> None:
    """Publish one message per task on the census's queue (BrokerError names how many
    were published before the broker failed)."""
    limits = TimeLimits(census.deadline)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for n in tasks:
                app.send_task(
                    TASK_NAME,
                    args=[census.scan_id, n],
                    queue=census.queue,
                    task_id=f"{census.scan_id}:{n}",
                    soft_time_limit=limits.soft,
                    time_limit=limits.hard,
                    producer=producer,
                    retry=True,
                    retry_policy={"max_retries": 3, "interval_start": 0.5},
                )
                sent += 1
                if on_published is not None and (sent % 1000 == 0 or sent == len(tasks)):
                    on_published(sent, len(tasks))
    except Exception as exc:  # kombu raises many types; every one means "not enqueued"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrokerError(
            f"the broker {census.broker} failed after {sent:,} of {len(tasks):,} tasks"
            f" ({reason}); the rest stay pending: `exwatch census retry {census.scan_id}"
            " --pending` publishes them"
        ) from None


def retry(
    *, broker: str, db: str, scan_id: str | None, pending: bool, deadline: float | None = None
) -> tuple[str, list[int]]:
    """Publish again the tasks of a census that were parked or cancelled (their attempts
    start afresh) and, with `pending`, those never started (a broker that lost its
    messages); returns (census id, tasks published)."""
    require_postgres(db)
    with open_store(db) as store:
        book = CensusBook(store)
        census = find_census(book, store, scan_id)
        app = celery_app(broker, deadline=deadline or census.deadline)
        check_broker(app)
        tasks = book.reopen(census.scan_id, ["parked", "cancelled"])
        if pending:
            opened = set(tasks)
            tasks += [
                int(t["task"])
                for t in book.tasks(census.scan_id, ["pending"])
                if int(t["task"]) not in opened
            ]
        publish(app, census, sorted(tasks))
    return census.scan_id, sorted(tasks)


def find_census(book: CensusBook, store: Store, scan_id: str | None) -> Census:
    """The named census, or the latest one; UsageError when there is none."""
    wanted = scan_id or book.latest()
    if wanted is None:
        raise UsageError(f"no census in {store.location}; submit one with `exwatch census submit`")
    census = book.census(wanted)
    if census is None:
        raise UsageError(f"no census {wanted} in {store.location}")
    return census


__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_TASK_SIZE",
    "Submission",
    "find_census",
    "publish",
    "require_postgres",
    "retry",
    "submit",
]
