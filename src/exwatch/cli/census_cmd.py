"""`exwatch census submit|status|cancel|retry`: a census on Celery workers (see
docs/distributed.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from exwatch.census.broker import DEFAULT_DEADLINE, DEFAULT_QUEUE
from exwatch.census.submit import DEFAULT_MAX_ATTEMPTS, DEFAULT_TASK_SIZE
from exwatch.checks import catalogue
from exwatch.cli import scan_options
from exwatch.errors import UsageError
from exwatch.scan.job import ScanJob
from exwatch.scan.targets import Spec, read_specs
from exwatch.untrusted import plain_for_terminal

_BROKER_HELP = "Celery broker: redis://host:6379/0 or amqp://user:password@host:5672//."
_DB_HELP = "The shared store: postgresql://user@host/database (a census needs PostgreSQL)."


def census_specs(targets: tuple[str, ...], target_file: str | None) -> list[str | Spec]:
    """Every target of the census, read now: the permutation it is split along needs the
    whole space (a census cannot stream a list the way `scan` does)."""
    specs: list[str | Spec] = []
    for t in targets:
        specs.extend(read_specs("-") if t == "-" else [t])
    if target_file:
        if target_file != "-" and not Path(target_file).is_file():
            raise UsageError(f"target list not found: {target_file}")
        specs.extend(read_specs(target_file))
    if not specs:
        raise UsageError(
            "no targets: give addresses, CIDRs, ranges or hostnames, -l FILE, or - for stdin"
        )
    return specs


@click.group("census")
def census() -> None:
    """A census split into tasks for `exwatch worker` processes on any number of machines,
    all writing one PostgreSQL store (docs/distributed.md)."""


@census.command("submit", epilog=catalogue.help_text())
@click.argument("targets", nargs=-1)
@click.option(
    "-l", "--list", "target_file", metavar="FILE", help="Read targets from FILE, one per line."
)
@click.option("--broker", required=True, metavar="URL", help=_BROKER_HELP)
@click.option("--db", required=True, metavar="URL", help=_DB_HELP)
@click.option(
    "--queue", default=DEFAULT_QUEUE, show_default=True, help="Queue the workers consume."
)
@click.option("--port", default=443, show_default=True, type=click.IntRange(1, 65535))
@scan_options.TIMEOUT
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    help="New connections per second across ALL workers together (default: unlimited).",
)
@click.option(
    "--concurrency",
    default=500,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Targets in flight in each worker process.",
)
@scan_options.ALLOW_PRIVATE
@click.option(
    "--exclude",
    multiple=True,
    metavar="FILE",
    help="Exclusion list (CIDR per line, # comments); repeatable. Its content is stored with"
    " the census: workers never read files of their own.",
)
@scan_options.SEED
@click.option(
    "--scan-id",
    metavar="NAME",
    help="Census id (default: census-DAY-DIGEST of the targets, seed, port, probes and checks).",
)
@scan_options.PLAIN_HTTP
@click.option(
    "--user-agent",
    metavar="TEXT",
    help="User-Agent every worker sends; name your team and a contact URL.",
)
@scan_options.FOLLOW_UPS
@scan_options.TRANSPORT
@scan_options.ADD_PROBE
@scan_options.CHECK
@click.option(
    "--task-size",
    default=DEFAULT_TASK_SIZE,
    show_default=True,
    type=click.IntRange(1, 1 << 40),
    help="Targets per task (positions of the census's permutation).",
)
@click.option(
    "--task-deadline",
    default=DEFAULT_DEADLINE,
    show_default=True,
    type=click.FloatRange(1, 86_400),
    help="Seconds a task may run; workers need a --task-deadline at least this long.",
)
@click.option(
    "--max-attempts",
    default=DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Attempts per task before it is parked with its error.",
)
def submit(
    targets: tuple[str, ...],
    target_file: str | None,
    broker: str,
    db: str,
    queue: str,
    port: int,
    timeout: float,
    rate: float | None,
    concurrency: int,
    allow_private: bool,
    exclude: tuple[str, ...],
    seed: int,
    scan_id: str | None,
    plain_http: bool,
    user_agent: str | None,
    follow_ups: bool,
    transport: str,
    extra_probes: tuple[str, ...],
    checks: tuple[str, ...],
    task_size: int,
    task_deadline: float,
    max_attempts: int,
) -> int:
    """Split a census of TARGETs into tasks and enqueue them (targets as for `scan`).

    The census is recorded in the store as one scan: reports, diffs and exports treat it
    like any other.  Start workers with `exwatch worker` on as many machines as you like.
    """
    from exwatch.census.submit import submit as submit_census

    for f in exclude:
        if not Path(f).is_file():
            raise UsageError(f"exclusion file not found: {f}")
    job = ScanJob(
        specs=census_specs(targets, target_file),
        port=port,
        timeout=timeout,
        rate=rate,
        concurrency=concurrency,
        allow_private=allow_private,
        exclude=list(exclude),
        seed=seed,
        output=None,
        db=None,
        tls=not plain_http,
        follow_ups=follow_ups,
        user_agent=user_agent,
        extra_probes=list(extra_probes),
        scan_id=scan_id,
        checks=scan_options.check_ids(checks),
        transport=transport,
    )
    # As `scan` does, before anything is recorded or published (a worker without the
    # transport fails its tasks with the same message).
    scan_options.require_transport(transport)
    err = Console(stderr=True, highlight=False)

    def published(done: int, total: int) -> None:
        if total >= 10_000:
            err.print(f"published {done:,}/{total:,} tasks")

    sub = submit_census(
        job,
        broker=broker,
        db=db,
        queue=queue,
        task_size=task_size,
        deadline=task_deadline,
        max_attempts=max_attempts,
        on_published=published,
    )
    click.echo(
        f"census {sub.scan_id}: {sub.targets:,} targets in {sub.tasks:,} tasks on queue"
        f" {sub.queue!r} at {sub.broker}"
    )
    click.echo(
        f"start workers: exwatch worker --broker {sub.broker} --db DB --queue {sub.queue}"
        + (f" --task-deadline {sub.deadline:g}" if sub.deadline > DEFAULT_DEADLINE else "")
    )
    click.echo(f"follow it:     exwatch census status {sub.scan_id} --db DB")
    return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@census.command("status")
@click.argument("scan_id", required=False)
@click.option("--db", required=True, metavar="URL", help=_DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def status(scan_id: str | None, db: str, as_json: bool) -> int:
    """Tasks done, pending, failed and parked; hosts/s, found, ETA (latest census by default).

    Exit status 0 while the census runs or when it finished, 1 when it ended with parked
    tasks or was cancelled.
    """
    from exwatch.census.status import census_status

    st = census_status(db, scan_id)
    code = 1 if st.status in ("incomplete", "cancelled") else 0
    if as_json:
        click.echo(json.dumps(st.to_json(), sort_keys=True))
        return code
    by = st.tasks_by_status
    states = [
        (by["done"], "done"), (by["running"], "running"), (by["pending"], "pending"),
        (by["retrying"], "failed (to retry)"), (by["parked"], "parked"),
        (by["cancelled"], "cancelled"),
    ]  # fmt: skip
    pct = 100 * st.scanned / st.targets if st.targets else 0.0
    speed = f"{st.rate:,.1f} hosts/s" if st.rate else "-"
    if st.rate_limit:
        speed += f" (limit {st.rate_limit:g}/s across all workers)"
    if st.transport not in (None, "python"):  # the opt-in client: say which one the numbers are
        speed += f", transport {plain_for_terminal(st.transport)}"
    lines = [
        f"census {plain_for_terminal(st.scan_id)}: {st.status}"
        f" (queue {plain_for_terminal(st.queue)} at {plain_for_terminal(st.broker)})",
        f"tasks    {st.tasks:,}: " + ", ".join(f"{n:,} {name}" for n, name in states if n),
        f"results  {st.scanned:,} of {st.targets:,} targets ({pct:.1f} %)",
        f"found    {st.exchange:,} Exchange, {st.vulnerable:,} with a vulnerable verdict"
        + (
            f", {st.compromised:,} compromised of {st.checked:,} checked"
            if st.checked is not None and st.compromised is not None
            else ""
        ),
        f"speed    {speed}",
        f"elapsed  {_duration(st.elapsed)}",
    ]
    if st.status in ("queued", "running"):
        lines.append(f"ETA      {_duration(st.eta)}")
    for title, rows in (("parked", st.parked), ("failed, to retry", st.retrying)):
        if rows:
            lines.append(f"{title}:")
        for t in rows:
            error = (t["error"] or "-").splitlines()[0] if t["error"] else "-"
            lines.append(
                f"  task {t['task']} (attempts {t['attempts']}): {plain_for_terminal(error, 300)}"
            )
    if st.running:
        lines.append("running:")
        for t in st.running:
            lines.append(
                f"  task {t['task']} on {plain_for_terminal(t['worker'])}:"
                f" {t['scanned']:,} results, updated {t['updated_at']}"
            )
    more = by["parked"] - len(st.parked)
    if more > 0:
        lines.append(f"  ... and {more:,} more parked tasks")
    click.echo("\n".join(lines))
    return code


@census.command("cancel")
@click.argument("scan_id", required=False)
@click.option("--db", required=True, metavar="URL", help=_DB_HELP)
def cancel(scan_id: str | None, db: str) -> int:
    """Stop a census: tasks not started are dropped, running ones stop at their next batch
    and keep what they found (latest census by default)."""
    from exwatch.census.status import cancel as cancel_census

    found, counts = cancel_census(db, scan_id)
    running = counts.get("running", 0)
    click.echo(
        f"census {found} cancelled: "
        + ", ".join(f"{n:,} {state}" for state, n in sorted(counts.items()))
        + (f"; {running:,} running tasks stop at their next batch" if running else "")
    )
    return 0


@census.command("retry")
@click.argument("scan_id", required=False)
@click.option("--broker", required=True, metavar="URL", help=_BROKER_HELP)
@click.option("--db", required=True, metavar="URL", help=_DB_HELP)
@click.option(
    "--pending",
    is_flag=True,
    help="Also publish again the tasks never started (a broker that lost its messages).",
)
def retry(scan_id: str | None, broker: str, db: str, pending: bool) -> int:
    """Enqueue again the parked and cancelled tasks of a census (fresh attempts; what they
    stored is kept and skipped)."""
    from exwatch.census.submit import retry as retry_census

    found, tasks = retry_census(broker=broker, db=db, scan_id=scan_id, pending=pending)
    click.echo(f"census {found}: {len(tasks):,} tasks enqueued again")
    return 0


__all__ = ["census"]
