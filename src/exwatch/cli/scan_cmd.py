"""`exwatch scan TARGET...`: find Exchange servers, read their build passively, store results."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from exwatch.checks import catalogue
from exwatch.cli import scan_options
from exwatch.cli.progress import scan_progress
from exwatch.errors import UsageError
from exwatch.scan.job import ScanJob, ScanSummary, default_workers, execute, probe_ids
from exwatch.scan.targets import Spec, parse_ports, parse_shard


def collect_specs(targets: tuple[str, ...], target_file: str | None) -> tuple[list[str], list[str]]:
    """(targets given as arguments, target lists to stream: files and `-` for stdin)."""
    specs = [t for t in targets if t != "-"]
    lists = ["-"] if "-" in targets else []
    if target_file:
        if target_file != "-" and not Path(target_file).is_file():
            raise UsageError(f"target list not found: {target_file}")
        lists.append(target_file)
    if not specs and not lists:
        raise UsageError(
            "no targets: give addresses, CIDRs, ranges or hostnames, -l FILE, or - for stdin"
        )
    if lists.count("-") > 1:
        raise UsageError("standard input can be read only once (- and -l - together)")
    return specs, lists


def summary_object(summary: ScanSummary) -> dict[str, Any]:
    """The summary's facts, as `--summary-json` writes them (the same numbers as the
    summary line and its table)."""
    t = summary.tally
    return {
        "scan_id": summary.scan_id,
        "state": "interrupted" if summary.interrupted else "finished",
        "exit_code": summary.exit_code,
        "targets": summary.targets,
        "addresses": t.done,
        "elapsed_s": round(t.elapsed, 3),
        "rate": round(t.rate, 1),
        "exchange": t.exchange,
        "vulnerable": t.vulnerable,
        "checked": t.checked,
        "compromised": t.compromised,
        "already_done": t.skipped,
        "statuses": dict(t.statuses.most_common()),
        "output": summary.output,
        "db": summary.db,
        "notes": list(summary.notes),
    }


def write_summary(path: Path, summary: ScanSummary) -> bool:
    """`--summary-json`; False (and said) when the write fails: the results are written
    already, the summary a script waits for is not."""
    try:
        path.write_text(json.dumps(summary_object(summary), indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        click.echo(f"exwatch: could not write the summary to {path}: {exc.strerror}", err=True)
        return False
    return True


def print_summary(console: Console, summary: ScanSummary) -> None:
    t = summary.tally
    state = "interrupted" if summary.interrupted else "finished"
    console.print(
        f"scan {summary.scan_id} {state}: {t.done:,} addresses in {t.elapsed:.1f} s "
        f"({t.rate:,.0f}/s), {t.exchange:,} Exchange, {t.vulnerable:,} with a vulnerable verdict"
        + (f", {t.compromised:,} compromised of {t.checked:,} checked" if t.checked else "")
        + (f", {t.skipped:,} already done" if t.skipped else ""),
        soft_wrap=True,
    )
    table = Table(show_header=True, header_style="bold", title="outcomes")
    table.add_column("status")
    table.add_column("count", justify="right")
    for status, n in t.statuses.most_common():
        table.add_row(status, f"{n:,}")
    console.print(table)
    for note in summary.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    if summary.output:
        console.print(f"results: {summary.output}")
    if summary.db:
        console.print(f"store: {summary.db} (scan {summary.scan_id})")
    if summary.interrupted:
        console.print("resume with the same command and --resume")


@click.command("scan", epilog=catalogue.help_text())
@click.argument("targets", nargs=-1)
@click.option(
    "-l",
    "--list",
    "target_file",
    metavar="FILE",
    help="Read targets from FILE, one per line, as the scan goes (- for stdin).",
)
@click.option(
    "--port",
    "port_text",
    default="443",
    show_default=True,
    metavar="PORT[,PORT...]",
    help="Port(s) to scan on every address and hostname (host:port targets keep theirs).",
)
@scan_options.TIMEOUT
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    help="New connections per second (default: unlimited).",
)
@click.option(
    "--concurrency",
    default=500,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Targets in flight.",
)
@scan_options.ALLOW_PRIVATE
@click.option(
    "--exclude",
    multiple=True,
    metavar="FILE",
    help="Exclusion list (CIDR per line, # comments); repeatable.",
)
@scan_options.SEED
@click.option(
    "--shard",
    default="1/1",
    show_default=True,
    help="Scan only shard i of N (1-based, as masscan: 1/4 ... 4/4).",
)
@click.option(
    "--scan-id",
    metavar="NAME",
    help="Census id shared by every shard and machine of one census (default with --shard"
    " i/N: census-DAY-DIGEST of the targets, seed, port, probes and checks).",
)
@click.option(
    "-o", "--output", metavar="FILE.jsonl", help="Write one JSON object per target address."
)
@click.option(
    "--force", is_flag=True, help="Overwrite the --output file if it exists (else refused)."
)
@click.option(
    "--db",
    default="exwatch.duckdb",
    show_default=True,
    metavar="PATH|URL",
    help="Result store: a DuckDB file, or postgresql://user@host/database.",
)
@click.option("--no-db", is_flag=True, help="Do not store results (only --output).")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted scan with the same targets and options.",
)
@scan_options.PLAIN_HTTP
@click.option(
    "--user-agent",
    metavar="TEXT",
    help="User-Agent to send; name your team and a contact URL so owners can reach you.",
)
@scan_options.FOLLOW_UPS
@scan_options.TRANSPORT
@scan_options.ADD_PROBE
@scan_options.CHECK
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Scanning processes (default: one per core; one when targets come on stdin).",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress bar on a terminal, no status lines without."
)
@click.option(
    "--summary-json",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Also write the end-of-scan summary to FILE as one JSON object (for scripts).",
)
@click.option(
    "--status-every",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1),
    metavar="SECONDS",
    help="Without a terminal (cron, nohup), print a status line on stderr this often.",
)
def scan(
    targets: tuple[str, ...],
    target_file: str | None,
    port_text: str,
    timeout: float,
    rate: float | None,
    concurrency: int,
    allow_private: bool,
    exclude: tuple[str, ...],
    seed: int,
    shard: str,
    scan_id: str | None,
    output: str | None,
    force: bool,
    db: str,
    no_db: bool,
    resume: bool,
    plain_http: bool,
    user_agent: str | None,
    follow_ups: bool,
    transport: str,
    extra_probes: tuple[str, ...],
    checks: tuple[str, ...],
    workers: int | None,
    quiet: bool,
    summary_json: str | None,
    status_every: float,
) -> int:
    """Scan TARGETs (IPs, CIDRs, a.b.c.d-e.f.g.h ranges, hostnames, IPv6, host:port,
    [IPv6]:port, https://host:port/ URLs; - reads stdin).

    Default probes are passive GETs any browser makes. Every target address gets one
    result record, failures included.

    Exit codes: 0 finished; 130 stopped by Ctrl-C, 143 by SIGTERM (everything found is
    kept: finish with the same command and --resume); 1 a write failed (disk full: the
    scan stops at once, no partial line); 2 a usage error.
    """
    for f in exclude:
        if not Path(f).is_file():
            raise UsageError(f"exclusion file not found: {f}")
    if summary_json is not None and not Path(summary_json).parent.is_dir():
        raise UsageError(f"--summary-json {summary_json}: no such folder")
    ports = parse_ports(port_text)
    if user_agent is None:
        click.echo(
            "exwatch: warning: the User-Agent's contact is a placeholder"
            " (security@example.invalid): give --user-agent (or user-agent in exwatch.toml)"
            " naming your team and a real contact, so owners of scanned servers can reach you",
            err=True,
        )
    specs, lists = collect_specs(targets, target_file)
    job = ScanJob(
        specs=list[str | Spec](specs),
        lists=lists,
        port=ports[0],
        ports=list(ports) if len(ports) > 1 else None,
        timeout=timeout,
        rate=rate,
        concurrency=concurrency,
        allow_private=allow_private,
        exclude=list(exclude),
        seed=seed,
        shard=parse_shard(shard),
        output=output,
        force=force,
        db=None if no_db else db,
        resume=resume,
        tls=not plain_http,
        follow_ups=follow_ups,
        user_agent=user_agent,
        workers=workers or default_workers(),
        extra_probes=list(extra_probes),
        scan_id=scan_id,
        checks=scan_options.check_ids(checks),
        transport=transport,
    )
    scan_options.require_transport(transport)  # not installed: refused before anything starts
    probe_ids(job.extra_probes)  # refuse unknown probe ids before anything starts
    if job.db is None and job.output is None:
        raise UsageError("--no-db needs --output, or nothing would be kept")
    console = Console(stderr=True, highlight=False)
    with scan_progress(console, quiet=quiet, every=status_every) as update:
        summary = execute(job, update)
    if summary.signal is not None:
        # Stopped by Ctrl-C or SIGTERM: further presses must not kill the summary or turn
        # the exit status into a death by signal while the interpreter shuts down.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print_summary(Console(stderr=True, highlight=False), summary)
    if summary_json is not None and not write_summary(Path(summary_json), summary):
        return summary.exit_code or 1  # a write failed, as the exit codes say
    return summary.exit_code
