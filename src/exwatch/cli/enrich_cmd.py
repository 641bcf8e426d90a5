"""`exwatch enrich`: add country, AS, organisation and sector to stored results.

`report`, `diff` and `export` take the same source options and enrich rows still missing
before they read, so running `enrich` first is only needed to re-enrich (`--refresh`) or to
do the slow part (e.g. `--rdns`) once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from exwatch.report.enrichment import EnrichOutcome, enrich_store
from exwatch.store import DEFAULT_PATH, Store
from exwatch.untrusted import plain_for_terminal

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_path",
        default=DEFAULT_PATH,
        show_default=True,
        type=click.Path(dir_okay=False),
        help="DuckDB result store.",
    )(func)


def enrichment_options(func: F) -> F:
    """--geo-db, --asn-db, --constituency, --rdns: the sources used for rows not yet enriched."""
    options = [
        click.option(
            "--geo-db",
            type=click.Path(exists=True, dir_okay=False),
            help="Country .mmdb (GeoLite2/DB-IP/IPinfo); default: RIR registration (iptocc).",
        ),
        click.option(
            "--asn-db",
            type=click.Path(exists=True, dir_okay=False),
            help="ASN .mmdb; default: found in /usr/share/GeoIP etc., else AS unknown.",
        ),
        click.option(
            "--constituency",
            type=click.Path(exists=True, dir_okay=False),
            help="CSV of networks/ASNs/domains -> organisation and sector.",
        ),
        click.option(
            "--rdns",
            is_flag=True,
            help="Resolve forward-confirmed PTR names (sends DNS queries to your resolver).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_enricher(
    geo_db: str | None, asn_db: str | None, constituency: str | None, rdns: bool
) -> Any:
    # Imported here: building an Enricher loads databases, which `--help` should not pay for.
    from exwatch.enrich import Enricher

    return Enricher(geo_db=geo_db, asn_db=asn_db, constituency=constituency, rdns=rdns)


def fill_missing(
    store: Store,
    geo_db: str | None,
    asn_db: str | None,
    constituency: str | None,
    rdns: bool,
    *,
    refresh: bool = False,
    quiet: bool = False,
) -> EnrichOutcome:
    """Enrich rows that lack enrichment (all rows with `refresh`); notes go to stderr."""
    from exwatch.report.enrichment import missing_count

    con = store.connection
    if not refresh and missing_count(con) == 0:
        return EnrichOutcome()
    enricher = make_enricher(geo_db, asn_db, constituency, rdns)
    for warning in enricher.warnings:
        click.echo(f"exwatch: warning: {plain_for_terminal(warning)}", err=True)
    outcome = enrich_store(con, enricher, refresh=refresh)
    if not quiet and outcome.rows:
        sources = enricher.sources
        click.echo(
            f"enriched {outcome.rows} results in {len(outcome.scans)} scans"
            f" (country: {plain_for_terminal(sources.get('country'))};"
            f" AS: {plain_for_terminal(sources.get('asn'))})",
            err=True,
        )
    return outcome


@click.command("enrich")
@db_option
@enrichment_options
@click.option("--refresh", is_flag=True, help="Re-enrich every result, not only new ones.")
def enrich(
    db_path: str,
    geo_db: str | None,
    asn_db: str | None,
    constituency: str | None,
    rdns: bool,
    refresh: bool,
) -> int:
    """Add country, AS, organisation and sector to answering results in the store.

    Offline by default: country of registration from RIR data (iptocc), AS from an .mmdb if
    one is given or found.  Only --rdns sends traffic (DNS queries).
    """
    with Store.open(db_path) as store:
        outcome = fill_missing(
            store, geo_db, asn_db, constituency, rdns, refresh=refresh, quiet=True
        )
    bad = f", {outcome.bad_records} unreadable records" if outcome.bad_records else ""
    click.echo(f"enriched {outcome.rows} results in {len(outcome.scans)} scans{bad}")
    return 0
