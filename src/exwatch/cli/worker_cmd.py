"""`exwatch worker`: Celery worker processes that scan census tasks into the shared store."""

from __future__ import annotations

import os
import socket
from typing import Any

import click

from exwatch.census.broker import DEFAULT_DEADLINE, DEFAULT_QUEUE


def _pool_process_init(**_: Any) -> None:
    """Each pool process: die with the worker (kill -9 of the worker must not leave a scan
    running on its own), and open its own store connections.

    By SIGKILL, as Celery itself sets it: billiard turns a SIGTERM in a pool process into
    SystemExit wherever the process happens to be, and one raised inside a weakref callback
    is printed and ignored, so an orphan went on to finish its task (seen in CI: the task
    was then never run again, because the orphan had already marked it done)."""
    import signal

    from exwatch.census.task import reset_process
    from exwatch.lab.process import die_with_parent

    die_with_parent(signal.SIGKILL)
    reset_process()


@click.command("worker")
@click.option("--broker", required=True, metavar="URL", help="redis://... or amqp://...")
@click.option(
    "--db", required=True, metavar="URL", help="The census's store: postgresql://user@host/db."
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="NAME",
    help=f"Queue to consume (repeatable; default {DEFAULT_QUEUE}).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    help="Scanning processes, each running one task at a time (default: two per core, so"
    " that one scans while another's task waits for its slowest hosts).",
)
@click.option(
    "--task-deadline",
    default=DEFAULT_DEADLINE,
    show_default=True,
    type=click.FloatRange(1, 86_400),
    help="Longest task deadline this worker accepts; sizes the broker's visibility timeout.",
)
@click.option("--name", metavar="NODE", help="Celery node name (default exwatch-PID@HOST).")
@click.option("--events", is_flag=True, help="Send task events (for Flower and `celery events`).")
@click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def worker(
    broker: str,
    db: str,
    queues: tuple[str, ...],
    concurrency: int | None,
    task_deadline: float,
    name: str | None,
    events: bool,
    loglevel: str,
) -> int:
    """Scan census tasks from the broker and write their results to the shared store.

    Runs until SIGTERM or Ctrl-C (finishes the running tasks, then stops) or SIGQUIT or a
    second Ctrl-C (stops now; the broker hands the unfinished tasks to other workers).
    Monitor with `celery --broker URL inspect active` or Flower.
    """
    from celery import signals

    from exwatch.census.broker import celery_app, check_broker
    from exwatch.census.submit import require_postgres
    from exwatch.census.task import register
    from exwatch.lab.process import raise_fd_limit
    from exwatch.scan.job import default_workers
    from exwatch.store import open_store

    require_postgres(db)
    with open_store(db):  # reachable, schema current, census tables present
        pass
    app = celery_app(broker, deadline=task_deadline)
    check_broker(app)
    register(app, db, task_deadline)
    signals.worker_process_init.connect(_pool_process_init, weak=False)
    raise_fd_limit()  # a process keeps up to --concurrency of the census connections open
    node = name or f"exwatch-{os.getpid()}@{socket.gethostname()}"
    w = app.Worker(
        hostname=node,
        pool_cls="prefork",
        concurrency=concurrency or 2 * default_workers(),
        loglevel=loglevel.upper(),
        queues=list(queues) or [DEFAULT_QUEUE],
        without_mingle=True,
        without_gossip=True,
        task_events=events,
        optimization="fair",
    )
    w.start()
    return int(w.exitcode or 0)


__all__ = ["worker"]
