"""One scan run from start to finish: targets, store bookkeeping, event loop(s), summary.

Both `exwatch scan` and `exwatch demo` go through `execute(job)`, so the demo exercises the
same code a census does.  With one worker the scan runs in this process; with more, forked
workers scan disjoint slices and this process is the single writer (scan/workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exwatch import __version__
from exwatch.errors import UsageError
from exwatch.model import Status
from exwatch.scan.runner import RunOptions, Tally, Writer, failure_record, open_jsonl, run_slice
from exwatch.scan.targets import Spec, TargetSpace


@dataclass(slots=True)
class ScanJob:
    """Everything that defines a scan; stored with the scan row so --resume can check it."""

    specs: list[str | Spec]
    port: int = 443
    timeout: float = 5.0
    rate: float | None = None
    concurrency: int = 500
    allow_private: bool = False
    exclude: list[str] = field(default_factory=list)
    seed: int = 0
    shard: tuple[int, int] = (0, 1)
    output: str | None = None
    db: str | None = "exwatch.duckdb"
    resume: bool = False
    tls: bool = True
    follow_ups: bool = True
    user_agent: str | None = None
    workers: int = 1
    extra_probes: list[str] = field(default_factory=list)  # non-default probes, by id
    scan_id: str | None = None  # a census shared by several shards/machines (--scan-id)
    checks: list[str] = field(default_factory=list)  # opt-in check ids (--check), in order

    def params(self) -> dict[str, Any]:
        """What identifies the scan for --resume (how many workers ran it does not).  A
        scan without checks has no `checks` key, as before checks existed."""
        p = asdict(self)
        for key in ("resume", "workers", "scan_id"):
            p.pop(key)
        if not p["checks"]:
            p.pop("checks")
        p["specs"] = [s.text if isinstance(s, Spec) else s for s in self.specs]
        p["shard"] = self.part
        return p

    @property
    def part(self) -> str:
        return f"{self.shard[0] + 1}/{self.shard[1]}"

    def census_id(self, day: str | None = None) -> str:
        """The id every shard of one census shares when no --scan-id is given: the UTC day
        it starts plus a digest of what defines the census (targets, exclusion lists by
        content, seed, port, probe settings), not of what may differ between machines
        (shard, rate, concurrency, timeout, output, store)."""
        p = self.params()
        defining = {key: p.get(key) for key in _CENSUS_KEYS}
        defining["exclude"] = [_file_digest(path) for path in self.exclude]
        if self.checks:  # shards of one census run the same checks
            defining["checks"] = list(self.checks)
        text = json.dumps(defining, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()
        stamp = day or datetime.now(UTC).strftime("%Y%m%d")
        return f"census-{stamp}-{digest[:10]}"


# What makes two shards parts of the same census (see ScanJob.census_id).
_CENSUS_KEYS = (
    "specs", "port", "seed", "allow_private", "tls", "follow_ups", "user_agent", "extra_probes",
)  # fmt: skip


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return path


@dataclass(slots=True)
class ScanSummary:
    scan_id: str
    targets: int
    tally: Tally
    interrupted: bool
    resumed: bool
    output: str | None
    db: str | None


def default_workers() -> int:
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def build_space(job: ScanJob) -> TargetSpace:
    from exwatch.scan.exclusions import Exclusions

    exclusions = Exclusions.from_files(job.exclude) if job.exclude else Exclusions.none()
    return TargetSpace.from_specs(
        job.specs, allow_private=job.allow_private, exclusions=exclusions, port=job.port
    )


def install_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on every platform); asyncio works, slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def probe_ids(extra: list[str]) -> tuple[str, ...] | None:
    """The probe ids to run: None (the default set) or the default set plus `extra`;
    refuses unknown or intrusive ids (UsageError)."""
    from exwatch.probes import PROBES, select

    if not extra:
        return None
    wanted = {p.id for p in select(None, allow_intrusive=False)} | set(extra)
    ids = tuple(p.id for p in PROBES if p.id in wanted)
    select(tuple(wanted), allow_intrusive=False)  # unknown ids are named here
    return ids


class _ProbeFactory:
    """Builds the per-host probe function inside whichever process runs the event loop."""

    def __init__(self, job: ScanJob, space: TargetSpace) -> None:
        self.job = job
        self.space = space

    def __call__(self) -> Callable[[str, int, str | None], Any]:
        from exwatch.scan.host import DEFAULT_USER_AGENT, HostSettings, scan_host

        job, space = self.job, self.space
        checked: set[tuple[str, int]] = set()  # this process's hosts: each checked once

        def claim(ip: str, port: int) -> bool:
            if (ip, port) in checked:
                return False
            checked.add((ip, port))
            return True

        settings = HostSettings(
            connect_timeout=job.timeout,
            tls_timeout=job.timeout,
            read_timeout=job.timeout,
            host_timeout=max(20.0, 4 * job.timeout),
            tls=job.tls,
            follow_ups=job.follow_ups,
            user_agent=job.user_agent or DEFAULT_USER_AGENT,
            probes=probe_ids(job.extra_probes),
            checks=tuple(job.checks),
        )
        host = functools.partial(scan_host, settings=settings, claim=claim)

        async def probe(ip: str, port: int, hostname: str | None) -> dict[str, Any]:
            # Hostnames can resolve into refused ranges; the space's own addresses are clean.
            reason = space.refusal(ip) if hostname is not None else None
            if reason is not None:
                return failure_record(ip, port, hostname, Status.BLOCKLISTED, f"{ip} is {reason}")
            return await host(ip, port, hostname)

        return probe


async def _run_here(
    job: ScanJob,
    space: TargetSpace,
    scan_id: str,
    options: RunOptions,
    writer: Writer,
    tally: Tally,
    done: set[tuple[str, int]],
    on_progress: Callable[[], None] | None,
) -> bool:
    """The single-process scan; returns True when interrupted."""
    progress_task = None
    if on_progress is not None:

        async def report() -> None:
            while True:
                on_progress()
                await asyncio.sleep(0.25)

        progress_task = asyncio.create_task(report())
    main = asyncio.current_task()
    assert main is not None
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        return await run_slice(
            space.iter(job.seed, job.shard),
            _ProbeFactory(job, space)(),
            writer,
            scan_id,
            options,
            tally,
            done,
        )
    finally:
        if progress_task is not None:
            progress_task.cancel()


_SCAN_WAIT = 7 * 24 * 3600.0


def _store_note(message: str) -> None:
    print(f"exwatch: {message}", file=sys.stderr, flush=True)


def execute(job: ScanJob, on_progress: Callable[[Tally, int], None] | None = None) -> ScanSummary:
    """Run a scan to completion (or Ctrl-C / SIGTERM, which keep everything found so far)."""
    from exwatch.store import open_store
    from exwatch.store.rows import valid_scan_id

    space = build_space(job)
    if job.workers < 1:
        raise UsageError("--workers must be at least 1")
    if job.scan_id is not None and not valid_scan_id(job.scan_id):
        raise UsageError(f"--scan-id {job.scan_id!r}: letters, digits and . _ : @ + - only")
    # Transient: a DuckDB store is opened per batch, so reports can read it during the scan;
    # a scan waits as long as it takes for a report that holds the file (never drops rows).
    store = (
        open_store(job.db, transient=True, wait=_SCAN_WAIT, on_wait=_store_note) if job.db else None
    )
    try:
        resumed = False
        done: set[tuple[str, int]] = set()
        total = space.shard_count(job.shard)
        part = job.part
        shared = job.scan_id or (job.census_id() if job.shard[1] > 1 else None)
        if job.resume:
            if store is None:
                raise UsageError("--resume needs --db (the store remembers what was scanned)")
            previous = store.find_resumable(job.params())
            if previous is None:
                raise UsageError(
                    "--resume: no interrupted scan with the same targets and options in the store"
                )
            scan_id, part = previous
            store.resume_scan(scan_id, part)
            done = set(store.done_targets(scan_id))
            resumed = True
        elif store is not None:
            scan_id = store.start_scan(
                job.params(), scan_id=shared, part=part, targets=total, tool_version=__version__
            )
        else:
            scan_id = shared or uuid.uuid4().hex
        tally = Tally()
        progress = (lambda: on_progress(tally, total)) if on_progress is not None else None
        options = RunOptions(
            concurrency=job.concurrency,
            rate=job.rate,
            timeout=job.timeout,
            shard=part if job.shard[1] > 1 else None,
        )
        jsonl = open_jsonl(Path(job.output) if job.output else None, append=resumed)
        try:
            if job.workers == 1:
                install_loop_policy()
                with asyncio.Runner() as runner:
                    writer = Writer(jsonl, store)
                    interrupted = runner.run(
                        _run_here(job, space, scan_id, options, writer, tally, done, progress)
                    )
            else:
                from exwatch.scan.workers import run_workers

                interrupted = run_workers(
                    job.workers,
                    space,
                    job.seed,
                    job.shard,
                    scan_id,
                    options,
                    _ProbeFactory(job, space),
                    done or None,
                    jsonl,
                    store,
                    tally,
                    progress,
                )
        finally:
            if jsonl is not None:
                jsonl.close()
        if progress is not None:
            progress()
        if store is not None:
            store.finish_scan(scan_id, "interrupted" if interrupted else "finished", part=part)
        return ScanSummary(scan_id, total, tally, interrupted, resumed, job.output, job.db)
    finally:
        if store is not None:
            store.close()


__all__ = [
    "ScanJob",
    "ScanSummary",
    "build_space",
    "default_workers",
    "execute",
    "install_loop_policy",
]
