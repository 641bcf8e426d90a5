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
import threading
import uuid
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exwatch import __version__
from exwatch.errors import ExwatchError, UsageError
from exwatch.model import Status
from exwatch.scan.admission import socket_budget
from exwatch.scan.done import DoneSet
from exwatch.scan.loop import StopSignal, install_loop_policy
from exwatch.scan.output import reconcile
from exwatch.scan.runner import RunOptions, Tally, Writer, failure_record, open_jsonl, run_slice
from exwatch.scan.stream import ListSource, ScanTargets, TargetStream
from exwatch.scan.targets import Spec, TargetSpace

if TYPE_CHECKING:
    from exwatch.scan.host import Claim


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
    force: bool = False  # overwrite an existing --output file
    ports: list[int] | None = None  # several ports (then `port` is ignored)
    lists: list[str] = field(default_factory=list)  # target list files, "-" for stdin
    list_identity: list[dict[str, Any]] | None = None  # their path/size/digest, once computed
    scan_id: str | None = None  # a census shared by several shards/machines (--scan-id)
    checks: list[str] = field(default_factory=list)  # opt-in check ids (--check), in order
    transport: str = "python"  # net.transport.TRANSPORTS; how, not what: not a resume key

    def params(self) -> dict[str, Any]:
        """What identifies the scan for --resume (how many workers ran it does not).  A
        scan without checks has no `checks` key, as before checks existed."""
        p = asdict(self)
        for key in ("resume", "workers", "force", "list_identity", "scan_id", "transport"):
            p.pop(key)
        if not p["checks"]:
            p.pop("checks")
        if self.lists:
            # The lists' identity, never their lines (ten million lines are 180 MB of JSON).
            if self.list_identity is None:
                self.list_identity = [ListSource(x).identity() for x in self.lists]
            p["lists"] = self.list_identity
        else:
            p.pop("lists")
        if self.ports is None:
            p.pop("ports")  # a one-port scan's parameters stay as they always were
        else:
            p.pop("port")
        p["specs"] = [s.text if isinstance(s, Spec) else s for s in self.specs]
        p["shard"] = self.part
        return p

    @property
    def part(self) -> str:
        return f"{self.shard[0] + 1}/{self.shard[1]}"

    def census_id(self, day: str | None = None) -> str:
        """The id every shard of one census shares when no --scan-id is given: the UTC day
        it starts plus a digest of what defines the census (targets, exclusion lists by
        content, seed, ports, probe settings), not of what may differ between machines
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
    "specs", "lists", "port", "ports", "seed", "allow_private", "tls", "follow_ups",
    "user_agent", "extra_probes",
)  # fmt: skip


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return path


@dataclass(slots=True)
class ScanSummary:
    scan_id: str
    targets: int | None  # None when a list on stdin made the total unknowable
    tally: Tally
    interrupted: bool
    resumed: bool
    output: str | None
    db: str | None
    signal: int | None = None  # the signal that stopped the scan (SIGINT, SIGTERM), if any
    notes: list[str] = field(default_factory=list)  # what the scan changed and the user should know

    @property
    def exit_code(self) -> int:
        """0 when finished; 128 + the signal when stopped by one (130 Ctrl-C, 143 SIGTERM)."""
        if self.signal is not None:
            return 128 + self.signal
        return 130 if self.interrupted else 0


def default_workers() -> int:
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def build_space(job: ScanJob) -> TargetSpace:
    from exwatch.scan.exclusions import Exclusions

    exclusions = Exclusions.from_files(job.exclude) if job.exclude else Exclusions.none()
    return TargetSpace.from_specs(
        job.specs,
        allow_private=job.allow_private,
        exclusions=exclusions,
        port=job.port,
        ports=job.ports,
        tls=job.tls,
    )


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def build_targets(job: ScanJob, space: TargetSpace) -> ScanTargets:
    """The space plus the streamed lists."""
    if not job.lists:
        return ScanTargets(space)
    for item in job.lists:
        ListSource(item).check()
        if job.output and item != "-" and _same_file(item, job.output):
            raise UsageError(f"{item} is both the target list and the output")
    job.params()  # hashes each list once here (the scan's parameters keep the digest)
    sources = [ListSource(item) for item in job.lists]
    stream = TargetStream(
        tuple(sources), space.ports, job.allow_private, space.exclusions, tls=job.tls
    )
    return ScanTargets(space, stream)


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
    """Builds the per-host probe function inside whichever process runs the event loop.

    `claim` decides which hosts the opt-in checks run on (scan/host.py `Claim`); by default
    each host once per process.  A census task passes its store's, once per census.
    """

    def __init__(self, job: ScanJob, space: TargetSpace, claim: Claim | None = None) -> None:
        self.job = job
        self.space = space
        self.claim = claim

    def __call__(self) -> Callable[[str, int, str | None], Any]:
        from exwatch.scan.host import DEFAULT_USER_AGENT, HostSettings, scan_host

        job, space = self.job, self.space
        checked: set[tuple[str, int]] = set()  # this process's hosts: each checked once

        def once(ip: str, port: int) -> bool:
            if (ip, port) in checked:
                return False
            checked.add((ip, port))
            return True

        claim = self.claim or once

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
            transport=job.transport,
        )
        host = functools.partial(scan_host, settings=settings, claim=claim)

        async def probe(ip: str, port: int, hostname: str | None) -> dict[str, Any]:
            # Hostnames can resolve into refused ranges, an IPv6 address can spell a refused
            # IPv4 one in ways interval arithmetic cannot cut (Teredo), list entries are
            # streamed unchecked: every address is checked here.
            reason = space.screen(ip, hostname)
            if reason is not None:
                return failure_record(ip, port, hostname, Status.BLOCKLISTED, f"{ip} is {reason}")
            return await host(ip, port, hostname)

        return probe


async def _run_here(
    job: ScanJob,
    targets: ScanTargets,
    scan_id: str,
    options: RunOptions,
    writer: Writer,
    tally: Tally,
    done: Container[tuple[str, int]] | None,
    on_progress: Callable[[], None] | None,
    stop: StopSignal,
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

    def on_signal(signum: int) -> None:
        if stop.signum is not None:
            return
        stop.signum = signum
        main.cancel()
        # Stopping: further Ctrl-Cs are ignored by the kernel from now on, so the last
        # writes finish.  The loop's handlers go first: closing the loop would otherwise
        # put back SIG_DFL (uvloop), and a late Ctrl-C would kill the process mid-summary.
        for other in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(other)
                signal.signal(other, signal.SIG_IGN)

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await run_slice(
            targets.for_loop(job.seed, job.shard),
            _ProbeFactory(job, targets.space)(),
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


def execute(
    job: ScanJob, on_progress: Callable[[Tally, int | None], None] | None = None
) -> ScanSummary:
    """Run a scan to completion (or Ctrl-C / SIGTERM, which keep everything found so far)."""
    if job.workers < 1:
        raise UsageError("--workers must be at least 1")
    if "-" in job.lists and job.workers > 1:
        # Forked workers cannot share one pipe, and spooling it first would wait for the
        # producer's end (`zmap ... | exwatch scan -`): one process reads stdin as it comes.
        job.workers = 1
    return _execute(job, build_targets(job, build_space(job)), on_progress)


def _execute(
    job: ScanJob,
    targets: ScanTargets,
    on_progress: Callable[[Tally, int | None], None] | None,
) -> ScanSummary:
    from exwatch.store import open_store
    from exwatch.store.rows import valid_scan_id

    space = targets.space
    if job.scan_id is not None and not valid_scan_id(job.scan_id):
        raise UsageError(f"--scan-id {job.scan_id!r}: letters, digits and . _ : @ + - only")
    # The output file first: a place that cannot be written is a usage error before any
    # scan row exists (it would stay 'running' forever otherwise).
    jsonl = open_jsonl(Path(job.output) if job.output else None, append=job.resume, force=job.force)
    try:
        # Transient: a DuckDB store is opened per batch, so reports can read it during the
        # scan; a scan waits as long as it takes for a report that holds the file (never
        # drops rows).
        store = (
            open_store(job.db, transient=True, wait=_SCAN_WAIT, on_wait=_store_note)
            if job.db
            else None
        )
    except BaseException:
        if jsonl is not None:
            jsonl.close()
        raise
    stop = StopSignal()
    saved = _signal_handlers()
    try:
        resumed = False
        done: DoneSet | None = None
        total = targets.shard_count(job.shard)
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
            done = DoneSet(store.done_targets(scan_id))
            if job.output:
                # The file may hold lines the store never committed (a kill -9 between the
                # two writes): keep exactly the committed ones, so each target ends up once.
                if jsonl is not None:
                    jsonl.close()
                reconcile(Path(job.output), done)
                jsonl = open_jsonl(Path(job.output), append=True)
            resumed = True
        elif store is not None:
            scan_id = store.start_scan(
                job.params(), scan_id=shared, part=part, targets=total, tool_version=__version__
            )
        else:
            scan_id = shared or uuid.uuid4().hex
        tally = Tally()
        progress = (lambda: on_progress(tally, total)) if on_progress is not None else None
        notes: list[str] = []
        # A target holds a socket, and briefly a second one while the first closes: past
        # the open-files limit the kernel, not the network, would fail the probes.
        per_process = max(1, socket_budget() // 2)
        concurrency = min(job.concurrency, per_process * job.workers)
        if concurrency < job.concurrency:
            notes.append(
                f"concurrency lowered from {job.concurrency:,} to {concurrency:,}:"
                f" the open-files limit allows {per_process:,} targets in flight per process"
                " (raise it with ulimit -Hn)"
            )
        options = RunOptions(
            concurrency=concurrency,
            rate=job.rate,
            timeout=job.timeout,
            shard=part if job.shard[1] > 1 else None,
        )
        failure: ExwatchError | None = None
        if job.workers == 1:
            install_loop_policy()
            with asyncio.Runner() as runner:
                writer = Writer(jsonl, store)
                interrupted = runner.run(
                    _run_here(job, targets, scan_id, options, writer, tally, done, progress, stop)
                )
            failure = writer.error
        else:
            from exwatch.scan.workers import run_workers

            try:
                interrupted = run_workers(
                    job.workers,
                    targets,
                    job.seed,
                    job.shard,
                    scan_id,
                    options,
                    _ProbeFactory(job, space),
                    done,
                    jsonl,
                    store,
                    tally,
                    progress,
                    stop,
                )
            except ExwatchError as exc:
                interrupted, failure = True, exc
        if failure is not None:
            if store is not None:
                with contextlib.suppress(ExwatchError):  # the store may be what failed
                    store.finish_scan(scan_id, "interrupted", part=part)
                raise type(failure)(
                    f"{failure}; fix that and run the same command with --resume to finish"
                ) from None
            raise failure
        if stop.signum is not None:
            # Stopping already: more Ctrl-Cs must not cut the last writes short.
            _set_signal_handlers((signal.SIG_IGN, signal.SIG_IGN))
        if progress is not None:
            progress()
        if store is not None:
            store.finish_scan(scan_id, "interrupted" if interrupted else "finished", part=part)
        return ScanSummary(
            scan_id, total, tally, interrupted, resumed, job.output, job.db, stop.signum, notes
        )
    finally:
        if jsonl is not None:
            jsonl.close()
        if store is not None:
            store.close()
        # The event loop's handlers are gone (uvloop leaves SIG_DFL behind): restore the
        # caller's, so a late Ctrl-C is a KeyboardInterrupt, not a silent kill.
        _set_signal_handlers(saved)


_Handlers = tuple[Any, Any]


def _signal_handlers() -> _Handlers | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)


def _set_signal_handlers(handlers: _Handlers | None) -> None:
    if handlers is None or threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in zip((signal.SIGINT, signal.SIGTERM), handlers, strict=True):
        if handler is not None:
            signal.signal(signum, handler)


__all__ = [
    "ScanJob",
    "ScanSummary",
    "StopSignal",
    "build_space",
    "build_targets",
    "default_workers",
    "execute",
    "install_loop_policy",
]
