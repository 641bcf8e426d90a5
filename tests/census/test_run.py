"""One task run by the scan engine into the real PostgreSQL, without a broker.

Targets are loopback addresses with nothing listening (refused at once) and one silent
listener (accepts, never answers), so a task's timing is in the test's hands.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from exwatch.census.plan import CensusSettings, split
from exwatch.census.run import run_task
from exwatch.store import open_store
from exwatch.store.census import Census, CensusBook, Claim
from tests.store.backends import pg_database, pg_store_url  # noqa: F401  (fixture)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def _task(db: str, port: int, timeout: float = 5) -> tuple[CensusSettings, Claim]:
    settings = CensusSettings(
        specs=("127.0.0.1", "127.0.0.2-127.0.0.5"), port=port, allow_private=True, timeout=timeout
    )
    space = settings.space()
    positions = space.permutation(settings.seed).positions
    census = Census(
        scan_id="run1", queue="q", broker="redis://127.0.0.1/1", settings=settings.to_json(),
        status="queued", targets=space.count, tasks=1, task_size=positions, deadline=60,
        max_attempts=3, rate=None,
    )  # fmt: skip
    with open_store(db) as store:
        book = CensusBook(store)
        with store.transaction():
            book.create(census, split(positions, positions), positions)
            store.start_scan({}, scan_id="run1", targets=space.count)
        claim = book.claim("run1", 0, "test:1")
    assert isinstance(claim, Claim)
    return settings, claim


def test_a_task_past_its_deadline_stops_once_and_keeps_its_results(
    pg_database: str,  # noqa: F811  (the fixture imported above)
    silent_port: int,
) -> None:
    """The deadline stops the slice while its last batch waits for the store: the task must
    wait for that batch, not be cancelled a second time in the middle of it (that lost the
    batch, ended the attempt with an exception and left the task 'running' for good)."""
    db = pg_store_url(pg_database)
    # Refused addresses answer at once (stored by the first flush, at 1 s); the silent one
    # times out at 1.5 s, just before the deadline, so the last flush has it to write.
    settings, claim = _task(db, silent_port, timeout=1.5)

    def hold_the_task_lock() -> None:
        # From 1.3 s to 2.5 s another attempt seems to be writing: the last flush waits.
        time.sleep(1.3)
        with psycopg.connect(db, autocommit=True) as con, con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(hashtext('exwatch:census-task:run1:0'))")
            time.sleep(1.2)

    holder = threading.Thread(target=hold_the_task_lock)
    try:
        with open_store(db) as store:
            holder.start()
            outcome = run_task(
                CensusBook(store), "run1", 0, claim, settings, settings.space(), deadline=1.6
            )
            stored = store.result_count("run1")
    finally:
        holder.join()
    assert outcome.state == "failed"
    assert outcome.error is not None
    assert "deadline" in outcome.error
    assert outcome.stored == stored
    assert stored == 5


def test_a_task_runs_to_its_end(pg_database: str) -> None:  # noqa: F811
    db = pg_store_url(pg_database)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once this socket is closed
    settings, claim = _task(db, closed)
    with open_store(db) as store:
        book = CensusBook(store)
        outcome = run_task(book, "run1", 0, claim, settings, settings.space(), deadline=30)
        assert (outcome.state, outcome.stored, outcome.skipped) == ("done", 5, 0)
        statuses = {r[0] for r in store.query("SELECT status FROM results WHERE scan_id = 'run1'")}
        assert statuses == {"connection-refused"}
