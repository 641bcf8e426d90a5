"""`exwatch diff SCAN_A SCAN_B`: what became of A's vulnerable hosts in B, per group."""

from __future__ import annotations

import click

from exwatch.cli.enrich_cmd import db_option, enrichment_options, fill_missing, open_db
from exwatch.cli.report_cmd import emit, footnote_of, source_fields
from exwatch.report import aggregate, trends

_GROUP_COLUMNS = [
    ("key", "key"),
    ("name", "name"),
    ("vulnerable_a", "vulnerable in A"),
    ("vulnerable_b", "vulnerable in B"),
    ("patched", "patched"),
    ("mitigated", "mitigated"),
    ("still_vulnerable", "still vulnerable"),
    ("not_seen", "not seen in B"),
    ("no_longer_exchange", "no longer Exchange"),
    ("newly_vulnerable", "newly vulnerable"),
    ("newly_compromised", "newly compromised"),
    ("no_longer_compromised", "no longer compromised"),
    ("patch_rate", "patch rate %"),
]
_HOST_COLUMNS = [
    ("ip", "ip"),
    ("port", "port"),
    ("country", "country"),
    ("before", "in A"),
    ("after", "in B"),
    ("compromise", "web shells"),
]


@click.command("diff")
@click.argument("scan_a")
@click.argument("scan_b")
@db_option
@click.option(
    "--by",
    type=click.Choice(trends.DIFF_GROUPS),
    default="country",
    show_default=True,
    help="Group the changes by this (total: one line).",
)
@click.option("--hosts", is_flag=True, help="List each host whose state changed instead.")
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json", "csv")), default="table",
    show_default=True,
)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@enrichment_options
def diff(
    scan_a: str,
    scan_b: str,
    db_path: str,
    by: str,
    hosts: bool,
    fmt: str,
    output: str | None,
    geo_db: str | None,
    asn_db: str | None,
    constituency: str | None,
    rdns: bool,
) -> int:
    """Compare two scans: patched, still vulnerable, not seen, newly vulnerable, patch rate.

    Patch rate = patched / (patched + still vulnerable): hosts of A that did not answer in B
    are counted apart, never as patched.
    """
    with open_db(db_path) as store:
        scan_a = aggregate.resolve_scan(store, scan_a)
        scan_b = aggregate.resolve_scan(store, scan_b)
        fill_missing(store, geo_db, asn_db, constituency, rdns, scan_ids=[scan_a, scan_b])
        fields = source_fields(store, [scan_a, scan_b])
        fields_note = footnote_of(fields)
        base = {"scan_a": scan_a, "scan_b": scan_b, **fields}
        if hosts:
            rows = [{**h, **base} for h in trends.host_changes(store, scan_a, scan_b)]
            columns = _HOST_COLUMNS
        else:
            diffs = trends.diff_scans(store, scan_a, scan_b, by)  # type: ignore[arg-type]
            rows = [{**d.to_json(), **base} for d in diffs]
            columns = _GROUP_COLUMNS
        emit(
            rows, columns, fmt, output,
            title=f"{scan_a} → {scan_b}" + ("" if hosts else f" per {by}"),
            footnote=fields_note,
        )  # fmt: skip
    return 0
