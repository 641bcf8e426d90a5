"""Census bookkeeping on the real PostgreSQL: claims, fencing, parking, cancel, the budget.

These drive the store the way workers do, attempt by attempt, so that every case a broker
can produce (a redelivery while the first attempt still writes, a worker lost again and
again, a cancel mid-task) is checked exactly, without waiting for a broker to produce it.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from exwatch.census.budget import RateBudget
from exwatch.errors import StoreError
from exwatch.store import open_store
from exwatch.store.census import Census, CensusBook, Claim, Refusal
from tests.store.backends import pg_database, pg_store_url  # noqa: F401  (fixture)
from tests.store.conftest import make_record


@pytest.fixture
def db(pg_database: str) -> str:  # noqa: F811  (the fixture imported above)
    return pg_store_url(pg_database)


def _census(book: CensusBook, scan_id: str = "c1", tasks: int = 2, attempts: int = 3) -> None:
    census = Census(
        scan_id=scan_id,
        queue="q",
        broker="redis://127.0.0.1:6379/1",
        settings={"specs": ["8.8.0.0/24"]},
        status="queued",
        targets=tasks * 10,
        tasks=tasks,
        task_size=10,
        deadline=60,
        max_attempts=attempts,
        rate=None,
    )
    store = book.store
    with store.transaction():
        book.create(census, [(n * 10, n * 10 + 10) for n in range(tasks)], tasks * 10)
        store.start_scan({"specs": ["8.8.0.0/24"]}, scan_id=scan_id, targets=tasks * 10)


def _records(first: int, count: int, scan_id: str = "c1") -> list[dict[str, Any]]:
    return [make_record(i, scan_id) for i in range(first, first + count)]


def _claim(book: CensusBook, task: int, worker: str = "w:1", scan_id: str = "c1") -> Claim:
    claim = book.claim(scan_id, task, worker)
    assert isinstance(claim, Claim), claim
    return claim


def test_a_census_needs_postgresql(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.duckdb") as store, pytest.raises(StoreError, match="PostgreSQL"):
        CensusBook(store)


def test_stores_made_before_the_census_tables_gain_them(db: str, tmp_path: Path) -> None:
    for target in (db, str(tmp_path / "old.duckdb")):
        with open_store(target) as store:
            store.execute("DROP TABLE census_tasks")
            store.execute("DROP TABLE census")
        with open_store(target) as store:
            assert store.has_table("census")
            assert store.has_table("census_tasks")


def test_a_redelivered_task_never_stores_a_row_twice(db: str) -> None:
    with open_store(db) as store:
        book = CensusBook(store)
        _census(book)
        first = _claim(book, 0, "host-a:1")
        assert (first.attempt, first.start, first.stop, first.resumed) == (1, 0, 10, False)
        assert book.write("c1", 0, 1, _records(0, 4), 4, 4) == ("ok", 4)
        # The broker hands the message to another worker while the first still runs.
        second = _claim(book, 0, "host-b:2")
        assert (second.attempt, second.resumed) == (2, True)
        # The first attempt's late writes and end are refused: it was replaced.
        assert book.write("c1", 0, 1, _records(4, 3), 3, 3) == ("superseded", 0)
        assert not book.finish("c1", 0, 1)
        assert book.fail("c1", 0, 1, "late") == "superseded"
        # The second attempt skips what the first one stored.
        wanted = [(f"8.8.0.{i}", 443) for i in range(10)] + [("8.8.0.1", 8443)]
        stored = book.stored_targets("c1", wanted, [("owa.example.org", 443)])
        assert stored == {(f"8.8.0.{i}", 443) for i in range(4)}
        assert book.write("c1", 0, 2, _records(4, 6), 6, 6) == ("ok", 6)
        assert book.finish("c1", 0, 2)
        (task,) = book.tasks("c1", ["done"])
        assert (task["attempts"], task["scanned"], task["worker"]) == (2, 10, "host-b:2")
        assert store.result_count("c1") == 10
        assert book.overview("c1")["status"] == "running"
        assert book.finish("c1", 1, _claim(book, 1).attempt)
        assert book.overview("c1")["status"] == "finished"
        assert store.scan_info("c1")["status"] == "finished"
        assert store.scan_parts("c1")[0]["recorded"] == 10


def test_a_failing_task_is_retried_then_parked_with_its_error(db: str) -> None:
    with open_store(db) as store:
        book = CensusBook(store)
        _census(book, attempts=2)
        claim = _claim(book, 0)
        assert book.fail("c1", 0, claim.attempt, "storing results: disk full") == "retry"
        assert book.tasks("c1", ["retrying"])[0]["error"] == "storing results: disk full"
        claim = _claim(book, 0)
        assert book.fail("c1", 0, claim.attempt, "storing results: disk full") == "parked"
        refused = book.claim("c1", 0, "w:1")
        assert isinstance(refused, Refusal)
        assert "parked" in refused.reason
        assert book.finish("c1", 1, _claim(book, 1).attempt)
        info = book.overview("c1")
        assert info["status"] == "incomplete"
        assert info["tasks_by_status"]["parked"] == 1
        assert store.scan_info("c1")["status"] == "interrupted"
        # An operator fixes the cause and retries: fresh attempts, the census runs again.
        assert book.reopen("c1", ["parked"]) == [0]
        assert book.overview("c1")["status"] == "running"
        assert store.scan_info("c1")["status"] == "running"
        assert _claim(book, 0).attempt == 1


def test_a_task_that_kills_its_worker_every_time_is_parked(db: str) -> None:
    with open_store(db) as store:
        book = CensusBook(store)
        _census(book, tasks=1, attempts=2)
        _claim(book, 0, "host-a:1")  # the worker dies: the message comes back
        _claim(book, 0, "host-b:2")  # and again
        refused = book.claim("c1", 0, "host-c:3")
        assert isinstance(refused, Refusal)
        (task,) = book.tasks("c1", ["parked"])
        assert "attempt 2 on host-b:2 ended without reporting back" in task["error"]
        assert book.overview("c1")["status"] == "incomplete"


def test_cancel_keeps_what_running_tasks_found(db: str) -> None:
    with open_store(db) as store:
        book = CensusBook(store)
        _census(book, tasks=3)
        running = _claim(book, 0)
        counts = book.cancel("c1")
        assert counts == {"cancelled": 2, "running": 1}
        # The running task's next batch is kept, and tells it to stop.
        assert book.write("c1", 0, running.attempt, _records(0, 2), 2, 2) == ("cancelled", 2)
        assert book.finish("c1", 0, running.attempt, "cancelled")
        assert isinstance(book.claim("c1", 1, "w:2"), Refusal)
        info = book.overview("c1")
        assert (info["status"], info["scanned"]) == ("cancelled", 2)
        assert store.scan_info("c1")["status"] == "interrupted"


def test_a_census_is_submitted_once(db: str) -> None:
    with open_store(db) as store:
        book = CensusBook(store)
        _census(book)
        with pytest.raises(StoreError, match="already submitted"):
            _census(book)


def test_leases_from_several_connections_never_overlap(db: str) -> None:
    with open_store(db) as store:
        _census(CensusBook(store))
    leases: list[tuple[float, float]] = []
    lock = threading.Lock()

    def lease_many() -> None:
        with open_store(db) as store:
            book = CensusBook(store)
            for _ in range(25):
                first, _now = book.lease("c1", 4, 0.01)
                with lock:
                    leases.append((first, first + 4 * 0.01))

    threads = [threading.Thread(target=lease_many) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leases.sort()
    assert len(leases) == 75
    for (_, end), (start, _) in itertools.pairwise(leases):
        assert start >= end - 1e-6, "two workers were given the same slots"


def test_rate_budget_spends_leases_one_slot_per_connection(db: str) -> None:
    import asyncio

    with open_store(db) as store:
        book = CensusBook(store)
        _census(book)
        budget = RateBudget(200.0, lambda n, gap: book.lease("c1", n, gap))

        async def take(count: int) -> None:
            for _ in range(count):
                await budget.acquire()

        started = time.monotonic()
        asyncio.run(take(100))
        # 0.2 s of slots per lease at 200/s: 40 slots each, so 100 slots are 3 leases, and
        # the 100th connection starts 99 slots after the first: never sooner.
        assert (budget.chunk, budget.leases) == (40, 3)
        assert time.monotonic() - started >= 99 / 200.0 - 0.01


def test_stored_targets_follow_hostnames_and_ports(db: str) -> None:
    with open_store(db) as store:
        book = CensusBook(store)
        _census(book)
        claim = _claim(book, 0)
        named = make_record(200, "c1")
        named["hostname"] = "owa.example.org"
        other_port = make_record(201, "c1")
        other_port["port"] = 8443
        assert book.write("c1", 0, claim.attempt, [named, other_port], 2, 2) == ("ok", 2)
        stored = book.stored_targets(
            "c1",
            [("8.8.0.201", 443), ("8.8.0.201", 8443)],
            [("owa.example.org", 443), ("owa.example.org", 8443)],
        )
        assert stored == {("8.8.0.200", 443), ("8.8.0.201", 8443)}
