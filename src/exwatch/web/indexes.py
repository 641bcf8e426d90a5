"""Indexes the web pages need on PostgreSQL (DuckDB scans columns fast enough without).

They serve the drill-down host lists (by country, organisation, address order), the host
page and search (by address, host name prefix, build, CVE).  `exwatch serve` creates them
when it starts on a writable store; they are not in the schema's own list because a scan
or ingest that never uses the web interface should not pay for maintaining them.
"""

from __future__ import annotations

from exwatch.store import Store

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
    return len(POSTGRES_WEB_INDEXES)


__all__ = ["POSTGRES_WEB_INDEXES", "ensure"]
