"""`exwatch enrich`: add country, AS, organisation and sector to stored results.

`report`, `diff` and `export` take the same source options and enrich before they read, so
running `enrich` first is only needed to do the slow part (e.g. `--rdns`) once.  Options that
differ from those a scan was enriched with re-enrich that scan; the sources used are stated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from exwatch.report.enrichment import EnrichOptions, EnrichOutcome, prepare
from exwatch.store import DEFAULT_PATH, Store, open_store
from exwatch.untrusted import plain_for_terminal

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_path",
        default=DEFAULT_PATH,
        show_default=True,
        metavar="PATH|URL",
        help="Result store: a DuckDB file, or postgresql://user@host/database.",
    )(func)


def note(message: str) -> None:
    click.echo(f"exwatch: {plain_for_terminal(message, 2000)}", err=True)


def open_db(db_path: str, *, create: bool = False, read_only: bool = False) -> Store:
    """The store for a command; readers do not create one, and say when they wait for it."""
    return open_store(db_path, create=create, read_only=read_only, on_wait=note)


def enrichment_options(func: F) -> F:
    """--geo-db, --asn-db, --constituency, --rdns: the sources enrichment uses."""
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


def make_enricher(options: EnrichOptions) -> Any:
    # Imported here: building an Enricher loads databases, which `--help` should not pay for.
    from exwatch.enrich import Enricher

    return Enricher(
        geo_db=options.geo_db,
        asn_db=options.asn_db,
        constituency=options.constituency,
        rdns=options.rdns,
    )


def describe(sources: dict[str, Any]) -> str:
    return (
        f"country: {sources.get('country')}; AS: {sources.get('asn')};"
        f" constituency: {sources.get('constituency') or 'none'}"
    )


def fill_missing(
    store: Store,
    geo_db: str | None,
    asn_db: str | None,
    constituency: str | None,
    rdns: bool,
    *,
    scan_ids: Sequence[str] | None = None,
    refresh: bool = False,
    quiet: bool = False,
    check_all: bool = False,
) -> EnrichOutcome:
    """Make enrichment complete and true to the options given; notes go to stderr."""
    options = EnrichOptions(geo_db, asn_db, constituency, rdns)
    outcome = prepare(store, make_enricher, options, scan_ids, refresh=refresh, check_all=check_all)
    for text in outcome.notes:
        note(f"warning: {text}")
    for scan_id in outcome.reenriched:
        note(f"scan {scan_id} was enriched with other options; enriched it again")
    if not quiet and outcome.rows:
        note(
            f"enriched {outcome.rows} results in {len(outcome.scans)} scans"
            f" ({describe(outcome.sources)})"
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
    one is given or found.  Only --rdns sends traffic (DNS queries).  A scan enriched with
    other options than these is enriched again with these.
    """
    with open_db(db_path) as store:
        outcome = fill_missing(
            store, geo_db, asn_db, constituency, rdns,
            refresh=refresh, quiet=True, check_all=True,
        )  # fmt: skip
    bad = f", {outcome.bad_records} unreadable records" if outcome.bad_records else ""
    used = f" ({describe(outcome.sources)})" if outcome.sources else ""
    click.echo(
        f"enriched {outcome.rows} results in {len(outcome.scans)} scans{bad}"
        f"{plain_for_terminal(used, 2000)}"
    )
    return 0
