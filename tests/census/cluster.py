"""A census cluster on this machine for the tests: the real brokers, PostgreSQL, workers.

Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672, guest) are the machine's own
(`EXWATCH_TEST_REDIS`, `EXWATCH_TEST_AMQP` override them); `.ci/run` starts them when they
are down.  Every test uses queues of its own (and a Redis database picked at random), so runs
in parallel do not meet; queues are deleted afterwards.  Workers are `exwatch worker`
processes, each in a session of its own, stopped (or killed) by their process ids.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exwatch.store import open_store

REDIS = os.environ.get("EXWATCH_TEST_REDIS", "redis://127.0.0.1:6379")
AMQP = os.environ.get("EXWATCH_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
BROKERS = ("redis", "amqp")
EXWATCH = [sys.executable, "-m", "exwatch"]


def broker_url(kind: str) -> str:
    if kind == "redis":
        return f"{REDIS}/{random.randint(1, 15)}"  # noqa: S311  (a database number, not a secret)
    return AMQP


def require_broker(url: str) -> None:
    """Skip (fail on CI) when the broker is not running."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no broker at {url}: {exc}")


def unique_queue() -> str:
    return f"exwatch-test-{uuid.uuid4().hex[:10]}"


def drop_queue(url: str, queue: str) -> None:
    """Delete the test's queue, and on Redis the binding keys kombu keeps beside it."""
    from kombu import Connection

    with Connection(url, connect_timeout=3) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(queue)  # type: ignore[attr-defined]  # both have it
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(url)
        try:
            for key in client.scan_iter(match=f"_kombu.binding*{queue}"):
                client.delete(key)
        finally:
            client.close()


def exwatch(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*EXWATCH, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


class Worker:
    """One `exwatch worker` process (its pool processes die with it)."""

    def __init__(
        self,
        broker: str,
        db: str,
        queue: str,
        log: Path,
        *,
        deadline: float = 20,
        concurrency: int = 1,
    ) -> None:
        self.log = log
        self._asked = False
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [
                *EXWATCH, "worker", "--broker", broker, "--db", db, "--queue", queue,
                "--concurrency", str(concurrency), "--task-deadline", str(deadline),
                "--name", f"{log.stem}-{uuid.uuid4().hex[:6]}@test",
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def kill9(self) -> None:
        """kill -9 of the worker process alone, as when its machine is lost."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def ask_to_stop(self) -> None:
        if self.proc.poll() is None and not self._asked:
            self._asked = True
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish

    def stop(self) -> None:
        self.ask_to_stop()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Its pool processes are in its session; none may outlive the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._out.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def workers(
    count: int, broker: str, db: str, queue: str, folder: Path, **kwargs: Any
) -> Iterator[list[Worker]]:
    started = [Worker(broker, db, queue, folder / f"worker{i}.log", **kwargs) for i in range(count)]
    try:
        yield started
    finally:
        for w in started:  # all at once: a warm shutdown takes a few seconds
            w.ask_to_stop()
        for w in started:
            w.stop()


def status(db: str, scan_id: str) -> dict[str, Any]:
    done = exwatch("census", "status", scan_id, "--db", db, "--json", check=False)
    assert done.returncode in (0, 1), done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def wait_until_ended(
    db: str, scan_id: str, timeout: float = 90, workers: list[Worker] | None = None
) -> dict[str, Any]:
    """Poll the census until it ended and no task runs any more; its final status."""
    from exwatch.census.status import census_status

    deadline = time.monotonic() + timeout
    while True:
        st = census_status(db, scan_id)
        if st.status not in ("queued", "running") and not st.tasks_by_status["running"]:
            return st.to_json()
        if time.monotonic() > deadline:
            logs = "\n".join(w.text()[-3000:] for w in workers or [])
            raise AssertionError(f"census {scan_id} still {st.status}: {st.to_json()}\n{logs}")
        time.sleep(0.3)


def rows(db: str, scan_id: str) -> list[dict[str, Any]]:
    """The census's stored records (the record JSON), one per stored row."""
    with open_store(db, read_only=True, create=False) as store:
        found = store.query("SELECT record FROM results WHERE scan_id = ?", [scan_id])
    return [json.loads(r[0]) for r in found]


def task_rows(db: str, scan_id: str) -> list[dict[str, Any]]:
    with open_store(db, read_only=True, create=False) as store:
        return store.dicts(
            "SELECT task, status, attempts, scanned, worker, error FROM census_tasks"
            " WHERE scan_id = ? ORDER BY task",
            [scan_id],
        )
