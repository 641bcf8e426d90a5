"""`exwatch export`: Shadowserver scan_exchange CSV, JSON lines or Parquet, optionally per group."""

from __future__ import annotations

import click

from exwatch.cli.enrich_cmd import db_option, enrichment_options, fill_missing, open_db
from exwatch.report import aggregate
from exwatch.report.exports import FORMATS, export
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
    "--compromised",
    is_flag=True,
    help="Only the hosts the webshells check found compromised (scan --check): Shadowserver"
    " rows tagged exchange;webshell with the shell's URL, or their JSON lines.",
)
@click.option(
    "-o", "--output", default="-", show_default=True, help="FILE, - for stdout, or DIR with --per."
)
@click.option(
    "--raw",
    is_flag=True,
    help="Write values exactly as servers sent them (no ' before cells that start like a"
    " spreadsheet formula); for machine pipelines, never for people's spreadsheets.",
)
@enrichment_options
def export_cmd(
    db_path: str,
    scan_id: str | None,
    fmt: str,
    per: str | None,
    all_exchange: bool,
    compromised: bool,
    output: str,
    raw: bool,
    geo_db: str | None,
    asn_db: str | None,
    constituency: str | None,
    rdns: bool,
) -> int:
    """Export one scan's vulnerable or end-of-life Exchange hosts for other tools.

    Shadowserver CSV cells that start like a spreadsheet formula (= + - @, tab, line break)
    get a leading ' (OWASP's rule), since these files are opened in Excel; --raw turns that
    off.  A file is written completely or not at all.
    """
    with open_db(db_path) as store:
        scan = aggregate.resolve_scan(store, scan_id)
        fill_missing(store, geo_db, asn_db, constituency, rdns, scan_ids=[scan])
        started = aggregate.scan_info(store, scan)["started_at"]
        if compromised:
            from exwatch.report.compromise import export_compromised

            written = export_compromised(
                store, scan, fmt, output, per=per, scan_date=started, raw=raw
            )
        else:
            written = export(
                store, scan, fmt, output,  # type: ignore[arg-type]
                per=per, all_exchange=all_exchange, scan_date=started, raw=raw,  # type: ignore[arg-type]
            )  # fmt: skip
    if output != "-" or per is not None:
        for path, rows in written:
            click.echo(f"{plain_for_terminal(path)}: {rows} rows", err=True)
    return 0
