"""Indexes the web pages need on PostgreSQL (DuckDB scans columns fast enough without).

They serve the drill-down host lists (by country, organisation, address order), the host
page and search (by address, host name prefix, build, CVE).  `exwatch serve` creates them
when it starts on a writable store; they are not in the schema's own list because a scan
or ingest that never uses the web interface should not pay for maintaining them.
"""

from __future__ import annotations

import logging

from exwatch.errors import StoreError
from exwatch.store import Store

log = logging.getLogger(__name__)

POSTGRES_WEB_INDEXES = (
    "CREATE INDEX IF NOT EXISTS web_enrichment_country ON enrichment (scan_id, country, ip_sort)",
    "CREATE INDEX IF NOT EXISTS web_enrichment_org ON enrichment (scan_id, organisation, ip_sort)",
    "CREATE INDEX IF NOT EXISTS web_enrichment_order ON enrichment (scan_id, ip_sort)",
    "CREATE INDEX IF NOT EXISTS web_enrichment_build ON enrichment (scan_id, build, ip_sort)",
    "CREATE INDEX IF NOT EXISTS web_enrichment_ip ON enrichment (ip)",
    "CREATE INDEX IF NOT EXISTS web_enrichment_cves ON enrichment USING gin (vulnerable_cves)",
    "CREATE INDEX IF NOT EXISTS web_results_ip ON results (ip)",
    "CREATE INDEX IF NOT EXISTS web_results_hostname"
    " ON results (scan_id, lower(hostname) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS web_results_cert"
    " ON results (scan_id, lower(tls_subject_cn) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS web_results_ntlm"
    " ON results (scan_id, lower(ntlm_dns_computer) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS web_groups_scan ON web_groups (scan_id, level, country)",
    # A country's hosts sorted by build, either way (the sort puts hosts without a build
    # last both ways, so one index cannot serve both directions).
    "CREATE INDEX IF NOT EXISTS web_enrichment_country_build"
    " ON enrichment (scan_id, country, build, ip_sort, port)",
    "CREATE INDEX IF NOT EXISTS web_enrichment_country_build_desc"
    " ON enrichment (scan_id, country, build DESC NULLS LAST, ip_sort, port)",
)
# Organisation search matches a substring: a trigram index (pg_trgm, in PostgreSQL's
# contrib) finds it without reading every organisation of the scan.  Without the extension
# the search still works, reading them all.
# The operator class is named with the extension's schema: the extension is installed once
# per database, in the schema of whichever store came first.
POSTGRES_TRIGRAM_INDEXES = (
    "CREATE INDEX IF NOT EXISTS web_groups_organisation_trgm ON web_groups"
    " USING gin (lower(organisation) \"{schema}\".gin_trgm_ops) WHERE level = 'sector_org'",
)


def ensure(store: Store) -> int:
    """Create the missing indexes (PostgreSQL, writable stores); returns how many there are."""
    if store.dialect.name != "postgresql" or store.read_only:
        return 0
    from exwatch.store.schema import create_table

    with store.transaction():
        store.lock("web-indexes")
        for name in ("web_groups", "web_groups_state"):
            store.execute(create_table(store.dialect, name))
        for statement in POSTGRES_WEB_INDEXES:
            store.execute(statement)
    return len(POSTGRES_WEB_INDEXES) + _trigram_indexes(store)


def _trigram_indexes(store: Store) -> int:
    """Install pg_trgm if allowed (a trusted extension: the database owner may) and create
    the trigram indexes; 0 when the server lacks it or refuses."""
    try:
        with store.transaction():
            store.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            schema = str(
                store.scalar(
                    "SELECT n.nspname FROM pg_extension x"
                    " JOIN pg_namespace n ON n.oid = x.extnamespace WHERE x.extname = 'pg_trgm'"
                )
            )
            for statement in POSTGRES_TRIGRAM_INDEXES:
                store.execute(statement.format(schema=schema.replace('"', '""')))
    except StoreError as exc:
        log.info("no trigram index for organisation search: %s", exc)
        return 0
    return len(POSTGRES_TRIGRAM_INDEXES)


__all__ = ["POSTGRES_TRIGRAM_INDEXES", "POSTGRES_WEB_INDEXES", "ensure"]
