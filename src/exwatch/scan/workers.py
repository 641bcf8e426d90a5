"""One scanning process per core: workers share the target stream and one writer.

Each worker scans a disjoint slice of the (sharded) permutation: with user shard i of n and
W workers, worker w takes shard i + n*w of n*W, and those slices together are exactly
shard i of n (the permutation shards by position modulo the shard count).  Workers send
batches of finished JSON lines to the parent through a bounded queue; the parent is the only
writer of the JSON lines file and the store.  Workers are forked, so the target space and the
set of already-done targets of a resumed scan (scan/done.py: packed, never written) are
shared without copying.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import signal
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from exwatch.errors import ExwatchError
from exwatch.scan.loop import StopSignal, install_loop_policy
from exwatch.scan.output import JsonlOutput, record_json
from exwatch.scan.runner import RunOptions, Tally, Writer, run_slice
from exwatch.scan.stream import ScanTargets

ProbeFn = Callable[[str, int, str | None], Any]


@dataclass(slots=True)
class _Batch:
    worker: int
    lines: list[str]
    tally: Tally


class _QueueSink:
    """The worker side of the writer: ships serialised batches and their counts to the parent."""

    def __init__(self, q: Any, worker: int) -> None:
        self.q = q
        self.worker = worker
        self.skipped_sent = 0
        self.tally: Tally | None = None

    def append(self, records: list[dict[str, Any]]) -> int:
        counts = Tally()
        for r in records:
            counts.count(r)
        if self.tally is not None:  # skips happen in the worker's runner, not in records
            counts.skipped = self.tally.skipped - self.skipped_sent
            self.skipped_sent = self.tally.skipped
        lines = [record_json(r) for r in records]
        self.q.put(_Batch(self.worker, lines, counts))
        return len(records)


def _worker_main(
    q: Any,
    worker: int,
    workers: int,
    targets: ScanTargets,
    seed: int,
    shard: tuple[int, int],
    scan_id: str,
    options: RunOptions,
    make_probe: Callable[[], ProbeFn],
    done: Container[tuple[str, int]] | None,
) -> None:
    from exwatch.lab.process import die_with_parent

    # The parent decides when to stop and tells each worker once, with SIGTERM: a Ctrl-C
    # reaches the whole process group, and a worker acting on it as well would be cancelled
    # twice (the second time in its final flush: a CancelledError traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, inherited
    # A parent killed with -9 must not leave workers scanning; with the only writer gone
    # there is nothing left to save, so SIGKILL (SIGTERM would wait on a full queue).
    die_with_parent(signal.SIGKILL)
    install_loop_policy()
    i, n = shard
    sub = (i + n * worker, n * workers)
    sink = _QueueSink(q, worker)
    tally = Tally()
    sink.tally = tally

    async def main() -> bool:
        task = asyncio.current_task()
        assert task is not None
        stopping = False

        def stop() -> None:
            nonlocal stopping
            if not stopping:
                stopping = True
                task.cancel()

        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, stop)
        writer = Writer(None, sink)
        return await run_slice(
            targets.for_loop(seed, sub), make_probe(), writer, scan_id, options, tally, done
        )

    try:
        interrupted = asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    q.put(("end", worker, interrupted))
    q.close()
    q.join_thread()


def run_workers(
    workers: int,
    targets: ScanTargets,
    seed: int,
    shard: tuple[int, int],
    scan_id: str,
    options: RunOptions,
    make_probe: Callable[[], ProbeFn],
    done: Container[tuple[str, int]] | None,
    jsonl: JsonlOutput | None,
    store: Any,
    tally: Tally,
    on_progress: Callable[[], None] | None,
    stop: StopSignal | None = None,
) -> bool:
    """Run `workers` forked processes to completion; returns True when interrupted.
    The first SIGINT or SIGTERM is recorded in `stop` and forwarded once to each worker.
    A failed write (OutputError, StoreError) stops the workers and is raised at the end."""
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue(maxsize=max(8, 4 * workers))  # bounded: slow writes slow the workers down
    per = RunOptions(
        concurrency=max(1, -(-options.concurrency // workers)),
        rate=None if options.rate is None else options.rate / workers,
        resolve_timeout=options.resolve_timeout,
        timeout=options.timeout,
        distrust=options.distrust,
        shard=options.shard,
    )
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(q, w, workers, targets, seed, shard, scan_id, per, make_probe, done),
            name=f"exwatch-worker-{w}",
            daemon=True,
        )
        for w in range(workers)
    ]
    interrupted = False
    ended: set[int] = set()

    forwarded = False
    error: ExwatchError | None = None

    def halt() -> None:
        nonlocal interrupted, forwarded
        interrupted = True
        if forwarded:
            return
        forwarded = True
        for p in procs:
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)

    def forward(signum: int, _frame: object) -> None:
        if stop is not None and stop.signum is None and not forwarded:
            stop.signum = signum
        halt()

    # Signals only set a flag here, so a batch is never cut in half on its way to the store.
    old_term = signal.signal(signal.SIGTERM, forward)
    old_int = signal.signal(signal.SIGINT, forward)
    try:
        for p in procs:
            p.start()
        if forwarded:  # a signal came while the workers were starting
            for p in procs:
                if p.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGTERM)
        while len(ended) < workers:
            try:
                item = q.get(timeout=0.25)
            except queue.Empty:
                if on_progress is not None:
                    on_progress()
                dead = [w for w, p in enumerate(procs) if not p.is_alive() and w not in ended]
                if dead and q.empty():
                    # a worker died without saying goodbye (killed): keep what it sent
                    ended.update(dead)
                    interrupted = True
                continue
            if isinstance(item, tuple):
                _, worker, was_interrupted = item
                ended.add(worker)
                interrupted = interrupted or was_interrupted
                continue
            if error is not None:
                continue  # stopping after a failed write: drain, keep nothing more
            try:
                if jsonl is not None:
                    jsonl.append("".join(line + "\n" for line in item.lines))
                if store is not None:
                    store.append_lines(item.lines, scan_id=scan_id)
            except ExwatchError as exc:
                error = exc
                halt()
                continue
            tally.merge(item.tally)
            if on_progress is not None:
                on_progress()
    finally:
        # After a stop signal, more presses are ignored until the caller has saved the rest.
        signal.signal(signal.SIGTERM, signal.SIG_IGN if forwarded else old_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN if forwarded else old_int)
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    if error is not None:
        raise error
    return interrupted


__all__ = ["run_workers"]
