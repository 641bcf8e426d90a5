"""`exwatch export`: Shadowserver scan_exchange CSV, JSON lines or Parquet, optionally per group."""

from __future__ import annotations

import click

from exwatch.cli.enrich_cmd import db_option, enrichment_options, fill_missing
from exwatch.report import aggregate
from exwatch.report.exports import FORMATS, export
from exwatch.store import Store
from exwatch.untrusted import plain_for_terminal


@click.command("export")
@db_option
@click.option("--scan", "scan_id", help="Scan to export (default: the latest).")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="shadowserver", show_default=True,
    help="shadowserver: scan_exchange CSV (IntelMQ reads it); jsonl: records + enrichment.",
)  # fmt: skip
@click.option(
    "--per",
    type=click.Choice(("country", "organisation")),
    help="One file per country or organisation, named like Shadowserver's, in -o DIR.",
)
@click.option(
    "--all-exchange",
    is_flag=True,
    help="Every Exchange host, not only vulnerable or end-of-life ones.",
)
@click.option(
    "-o", "--output", default="-", show_default=True, help="FILE, - for stdout, or DIR with --per."
)
@enrichment_options
def export_cmd(
    db_path: str,
    scan_id: str | None,
    fmt: str,
    per: str | None,
    all_exchange: bool,
    output: str,
    geo_db: str | None,
    asn_db: str | None,
    constituency: str | None,
    rdns: bool,
) -> int:
    """Export one scan's vulnerable or end-of-life Exchange hosts for other tools."""
    with Store.open(db_path) as store:
        fill_missing(store, geo_db, asn_db, constituency, rdns)
        con = store.connection
        scan = aggregate.resolve_scan(con, scan_id)
        started = aggregate.scan_info(con, scan)["started_at"]
        written = export(
            con, scan, fmt, output,  # type: ignore[arg-type]
            per=per, all_exchange=all_exchange, scan_date=started,  # type: ignore[arg-type]
        )  # fmt: skip
    if output != "-" or per is not None:
        for path, rows in written:
            click.echo(f"{plain_for_terminal(path)}: {rows} rows", err=True)
    return 0
