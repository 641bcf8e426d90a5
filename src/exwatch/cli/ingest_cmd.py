"""`exwatch ingest`: load JSONL scan results from other machines or shards into the store."""

from __future__ import annotations

import click

from exwatch.cli.enrich_cmd import db_option, open_db
from exwatch.store import ingest_files
from exwatch.untrusted import plain_for_terminal


@click.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@db_option
@click.option(
    "--scan-id",
    metavar="NAME",
    help="Scan for lines that carry no scan_id (without it such lines are rejected).",
)
@click.option("-v", "--verbose", is_flag=True, help="One line per file, and every rejected line.")
def ingest(files: tuple[str, ...], db_path: str, scan_id: str | None, verbose: bool) -> int:
    """Load scan results (JSON lines) from other machines or shards into the store.

    Every field is checked; the first rejected lines are listed with their numbers and
    reasons (-v lists all).  A target (scan, address, port) is stored once, so re-ingesting a
    file, or a file that repeats hosts, adds nothing twice.  Shards of one census (same
    scan_id) land in one scan.  Exit status 1 when no line could be loaded.  Use - to read
    standard input.
    """
    with open_db(db_path, create=True) as store:
        summary = ingest_files(store, files, scan_id=scan_id, keep=None if verbose else 10)
    shown = 0
    for path, rejection in summary.rejections():
        click.echo(
            f"{plain_for_terminal(path)}:{rejection.line}: rejected:"
            f" {plain_for_terminal(rejection.reason, 300)}",
            err=True,
        )
        shown += 1
    if summary.bad_lines > shown:
        click.echo(f"... {summary.bad_lines - shown} more rejected lines (-v lists all)", err=True)
    if verbose:
        for outcome in summary.files:
            s = outcome.stats
            note = " (already ingested)" if outcome.already_ingested else ""
            scans = f", scans {', '.join(s.scan_ids)}" if s.scan_ids else ""
            click.echo(
                f"{plain_for_terminal(outcome.path)}: {s.lines} lines, {s.new_rows} new,"
                f" {s.duplicates} duplicates, {s.bad_lines} bad{plain_for_terminal(scans)}{note}"
            )
    click.echo(f"ingested {summary.one_line()} into {plain_for_terminal(store.location)}")
    if summary.loaded_nothing:
        click.echo("exwatch: error: no line could be loaded", err=True)
        return 1
    return 0
