"""`exwatch ingest`: load JSONL scan results from other machines or shards into the store."""

from __future__ import annotations

import click

from exwatch.store import DEFAULT_PATH, Store, ingest_files
from exwatch.untrusted import plain_for_terminal


@click.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--db",
    "db_path",
    default=DEFAULT_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="DuckDB store to load into (created if missing).",
)
@click.option("-v", "--verbose", is_flag=True, help="Also print one line per file.")
def ingest(files: tuple[str, ...], db_path: str, verbose: bool) -> int:
    """Load scan results (JSON lines) from other machines or shards into the store.

    Re-ingesting a file adds nothing twice; corrupt or truncated lines are counted and
    skipped.  Use - to read standard input.
    """
    with Store.open(db_path) as store:
        summary = ingest_files(store, files)
    if verbose:
        for outcome in summary.files:
            s = outcome.stats
            note = " (already ingested)" if outcome.already_ingested else ""
            click.echo(
                f"{plain_for_terminal(outcome.path)}: {s.lines} lines, {s.new_rows} new,"
                f" {s.duplicates} duplicates, {s.bad_lines} bad{note}"
            )
    click.echo(f"ingested {summary.one_line()} into {plain_for_terminal(db_path)}")
    return 0
