"""The scan orchestrator: targets in, one record per target address out.

It owns what probes must not: the rate limit, the concurrency limit, hostname resolution,
skipping what a resumed scan already has, catching anything unexpected as an
`unknown-error` record, and the single writer that appends batches to the JSON lines file
and the store.  Per-host work is `scan_host` (scan/host.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from exwatch.errors import ExwatchError
from exwatch.model import Status
from exwatch.scan.admission import Admission
from exwatch.scan.output import JsonlOutput, record_lines
from exwatch.scan.pacing import RateLimiter
from exwatch.scan.record import new_record
from exwatch.scan.targets import ResolutionError, Target, resolve

log = logging.getLogger(__name__)

ScanHost = Callable[[str, int, str | None], Awaitable[dict[str, Any]]]


class RecordStore(Protocol):
    def append(self, records: list[dict[str, Any]]) -> int: ...


@dataclass(slots=True)
class Tally:
    """Live counters for the progress display and the final summary."""

    done: int = 0
    exchange: int = 0
    vulnerable: int = 0
    errors: int = 0
    skipped: int = 0
    checked: int = 0  # hosts the opt-in checks (--check) ran on
    compromised: int = 0  # of those, found compromised by the web-shell check
    statuses: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def count(self, record: dict[str, Any]) -> None:
        self.done += 1
        status = record.get("status", "unknown-error")
        self.statuses[status] += 1
        if status not in ("success", "connection-refused"):
            self.errors += 1
        if record.get("exchange"):
            self.exchange += 1
            if "vulnerable" in (record.get("cves") or {}).values():
                self.vulnerable += 1
        checks = record.get("checks")
        if isinstance(checks, dict) and checks.get("ran"):
            self.checked += 1
            judged = checks.get("compromise")
            self.compromised += isinstance(judged, dict) and judged.get("state") == "compromised"

    def merge(self, other: Tally) -> None:
        """Add another tally's counts (a worker's batch) to this one."""
        self.done += other.done
        self.exchange += other.exchange
        self.vulnerable += other.vulnerable
        self.errors += other.errors
        self.skipped += other.skipped
        self.checked += other.checked
        self.compromised += other.compromised
        self.statuses.update(other.statuses)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


class Writer:
    """The only writer: buffers records, appends them in batches to JSONL and the store."""

    def __init__(
        self,
        jsonl: JsonlOutput | None,
        store: RecordStore | None,
        batch: int = 2000,
        interval: float = 1.0,
    ) -> None:
        self.jsonl = jsonl
        self.store = store
        self.batch = batch
        self.interval = interval
        self.buffer: list[dict[str, Any]] = []
        # Without a store only the JSON lines are kept: each record is encoded as it arrives,
        # while it is still in the CPU's cache, and its objects are freed at once.
        self._lines: list[bytes] | None = [] if store is None and jsonl is not None else None
        self.pending = 0
        self.written = 0
        # The first failed write (disk full, read-only, store error): the scan stops there
        # rather than probing on with nothing saved.
        self.error: ExwatchError | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._main: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self._main = asyncio.current_task()
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    def add(self, record: dict[str, Any]) -> None:
        if self._lines is not None:
            self._lines.append(record_lines((record,)))
        else:
            self.buffer.append(record)
        self.pending += 1
        if self.pending >= self.batch:
            asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        async with self._lock:
            if not self.pending or self.error is not None:
                return
            batch, self.buffer = self.buffer, []
            lines, count, self.pending = self._lines, self.pending, 0
            if lines is not None:
                self._lines = []
            try:
                # JSON lines first, then the store: a kill in between leaves lines the store
                # did not commit, which a resume removes (output.reconcile) and rescans.
                if self.jsonl is not None:
                    data = b"".join(lines) if lines is not None else record_lines(batch)
                    self.jsonl.append(data, count)  # one line per record
                if self.store is not None:
                    # The store is one connection: a cancelled flush must not leave its thread
                    # writing while the next flush starts, so the lock is held until it is done.
                    write = asyncio.ensure_future(asyncio.to_thread(self.store.append, batch))
                    try:
                        await asyncio.shield(write)
                    except asyncio.CancelledError:
                        await write
                        raise
            except ExwatchError as exc:  # OutputError, StoreError: stop the scan here
                self.error = exc
                self.buffer = []
                if self._lines is not None:
                    self._lines = []
                self.pending = 0
                if self._main is not None and self._main is not asyncio.current_task():
                    self._main.cancel()
                return
            self.written += count

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def failure_record(
    ip: str | None, port: int, hostname: str | None, status: Status, error: str
) -> dict[str, Any]:
    """A record for a target that never reached the probes (bad name, blocklisted, crash)."""
    return new_record(ip, port, hostname, _now(), status.value, error)


@dataclass(slots=True)
class RunOptions:
    concurrency: int = 500  # ceiling of targets in flight; admission control adapts below it
    rate: float | None = None
    resolve_timeout: float = 5.0
    timeout: float = 5.0  # the per-phase timeout, to judge whether a timeout can be trusted
    distrust: float = 0.25  # retry a timeout when the loop lagged this share of the timeout
    shard: str | None = None  # "i/N", stamped on every record of a sharded census


# Outcomes that a starved event loop can fake; anything else is the network's answer.  A
# connect timeout is not one: the client lets the loop poll the sockets once more before it
# reports one (net/client._ConnectDeadline), so it means an address that never answered,
# and retrying it would only spend a second timeout on every silent address of the space.
_TIMEOUTS = frozenset({Status.IO_TIMEOUT.value})


async def run_targets(
    targets: Iterator[Target] | AsyncIterator[Target],
    scan_host: ScanHost,
    writer: Writer,
    scan_id: str,
    options: RunOptions,
    tally: Tally,
    skip: Callable[[str, int], bool] | None = None,
    admission: Admission | None = None,
) -> None:
    """Scan every target with admission control; returns when all are recorded.

    Cancellation (Ctrl-C) stops new work; what finished is already in the writer.
    """
    limiter = RateLimiter(options.rate)
    gate = admission or Admission(options.concurrency)
    gate.start()
    tasks: set[asyncio.Task[None]] = set()
    retry: deque[tuple[str, int, str | None]] = deque()

    def emit(record: dict[str, Any]) -> None:
        record["scan_id"] = scan_id
        if options.shard is not None:
            record["shard"] = options.shard
        tally.count(record)
        writer.add(record)

    async def attempt(ip: str, port: int, hostname: str | None, retried: bool) -> None:
        debt = gate.debt
        try:
            record = await scan_host(ip, port, hostname)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a probe must cost one record, not the scan
            log.debug("scan_host crashed on %s:%s\n%s", ip, port, traceback.format_exc())
            record = failure_record(
                ip, port, hostname, Status.UNKNOWN_ERROR, f"{type(exc).__name__}: {exc}"
            )
        finally:
            gate.release()
        if (
            not retried
            and record.get("status") in _TIMEOUTS
            and gate.debt - debt > options.distrust * options.timeout
        ):
            # The loop, not the network, may have run out the clock: try once more.
            gate.retries += 1
            retry.append((ip, port, hostname))
            return
        emit(record)

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def launch(ip: str, port: int, hostname: str | None, retried: bool = False) -> None:
        if skip is not None and skip(ip, port):
            tally.skipped += 1
            return
        await gate.acquire()
        await limiter.acquire()
        spawn(attempt(ip, port, hostname, retried))

    async def resolve_then_launch(target: Target) -> None:
        assert target.hostname is not None
        try:
            addresses = await resolve(target.hostname, timeout=options.resolve_timeout)
        except ResolutionError as exc:
            emit(
                failure_record(None, target.port, target.hostname, Status.INVALID_TARGET, str(exc))
            )
            return
        finally:
            gate.release()
        for ip in addresses:
            await launch(ip, target.port, target.hostname)

    async def admit(target: Target) -> None:
        while retry:
            await launch(*retry.popleft(), retried=True)
        if target.error is not None:  # a list line that is not a target
            emit(
                failure_record(
                    target.ip, target.port, target.hostname, Status.INVALID_TARGET, target.error
                )
            )
        elif target.ip is not None:
            await launch(target.ip, target.port, target.hostname)
        else:
            await gate.acquire()
            spawn(resolve_then_launch(target))

    try:
        if isinstance(targets, AsyncIterator):
            async for target in targets:
                await admit(target)
        else:
            for target in targets:
                await admit(target)
        while tasks or retry:
            while retry:
                await launch(*retry.popleft(), retried=True)
            if tasks:
                await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gate.stop()
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def run_slice(
    targets: Iterator[Target] | AsyncIterator[Target],
    scan_host: ScanHost,
    writer: Writer,
    scan_id: str,
    options: RunOptions,
    tally: Tally,
    done: Container[tuple[str, int]] | None,
) -> bool:
    """Scan a slice of targets with the writer running; True when cancelled (Ctrl-C,
    SIGTERM).  Everything finished is flushed either way; `done` targets are skipped."""
    writer.start()
    try:
        await run_targets(
            targets,
            scan_host,
            writer,
            scan_id,
            options,
            tally,
            skip=(lambda ip, port: (ip, port) in done) if done is not None else None,
        )
    except asyncio.CancelledError:
        return True
    finally:
        await writer.close()
    return False


async def prefetched(targets: Iterator[Target], depth: int = 4096) -> AsyncIterator[Target]:
    """`targets` read by a thread of its own, at most `depth` ahead.

    For streamed lists: reading a pipe (`zmap ... | exwatch scan -`) may block for as long
    as the producer pleases, and a blocked read on the event loop would stall every probe
    in flight (false timeouts), the progress display and the signal handlers.  Each target
    is handed over as soon as it is read (a slow producer's targets are not held back to
    fill a batch).  The thread is a daemon and is abandoned if the scan stops while it
    waits for input.
    """
    loop = asyncio.get_running_loop()
    ahead: queue.Queue[Target | BaseException | None] = queue.Queue(maxsize=depth)
    wake = asyncio.Event()
    stopping = threading.Event()

    def signal_ready() -> None:
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            loop.call_soon_threadsafe(wake.set)

    def pump() -> None:
        item: Target | BaseException | None = None
        try:
            for item in targets:
                while not stopping.is_set():
                    try:
                        ahead.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stopping.is_set():
                    return
                signal_ready()
            item = None
        except BaseException as exc:  # handed to the scan, which reports it
            item = exc
        ahead.put(item)
        signal_ready()

    threading.Thread(target=pump, name="exwatch-targets", daemon=True).start()
    try:
        while True:
            try:
                item = ahead.get_nowait()
            except queue.Empty:
                wake.clear()
                if ahead.empty():
                    await wake.wait()
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopping.set()


def open_jsonl(path: Path | None, append: bool, force: bool = False) -> JsonlOutput | None:
    """The JSON lines output (scan/output.py), or None without one."""
    return None if path is None else JsonlOutput.open(path, append=append, force=force)


__all__ = [
    "RunOptions",
    "Tally",
    "Writer",
    "failure_record",
    "open_jsonl",
    "prefetched",
    "run_slice",
    "run_targets",
]
