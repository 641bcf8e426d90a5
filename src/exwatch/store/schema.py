"""The store's tables, written once in portable types and spelled per backend, and migrations.

Schema 2 (this one) differs from schema 1 (DuckDB only, exwatch up to 0.1) in that verdict
maps are arrays (`vulnerable_cves`, `patched_cves`, `undetermined_cves`, `cve_ids`) instead of
a DuckDB MAP, the report fields once read from the record JSON are columns, results carry the
shard that wrote them, and enrichment records the options it was made with (`enrich_profiles`)
and feeds a per-scan pre-aggregation (`rollup`) so reports read a few hundred rows, not 10 M.

Tables
  meta            key/value: schema_version
  scans           one census (all its shards); origin scan|ingest; enrich_generation counts
                  enrichment changes, so a stale rollup is seen without counting rows
  scan_parts      one row per shard: targets to scan, results recorded, status, times
  results         one row per target address and scan; the whole record as JSON
  ingested_files  SHA-256 of every file ingested (a file is loaded once)
  enrich_profiles the options and sources an enrichment used
  enrichment      country, AS, organisation, sector per answering result, verdict columns copied
  rollup          per scan, dimension, country and key: hosts, Exchange, vulnerable, EOL counts
  rollup_state    the enrich_generation each scan's rollup was built from
  host_checks     per Exchange host the opt-in checks ran on (--check): compromise state, the
                  shells' paths and shapes, behavioural readings, the merged verdicts of the
                  CVEs the checks speak for; built from `results` by the first compromise
                  report after a load (report/compromise.py)
  host_checks_state  the `answered` count each scan's host_checks were built from
"""

from __future__ import annotations

from collections.abc import Sequence

from exwatch.store.dialect import Dialect

SCHEMA_VERSION = 2

Column = tuple[str, str]  # (name, portable type)

SCANS: list[Column] = [
    ("scan_id", "text"),
    ("name", "text"),
    ("origin", "text"),
    ("params", "json"),
    ("tool_version", "text"),
    ("status", "text"),
    ("started_at", "ts"),
    ("finished_at", "ts"),
    ("counts", "json"),
    ("enrich_generation", "bigint"),
    ("answered", "bigint"),  # results with status success, kept up to date by every load
    ("enriched", "bigint"),  # enrichment rows; equal to `answered` when nothing is missing
]

SCAN_PARTS: list[Column] = [
    ("scan_id", "text"),
    ("part", "text"),  # "i/N"
    ("shard_count", "int"),
    ("targets", "bigint"),  # to scan (known for shards scanned into this store)
    ("recorded", "bigint"),  # results stored so far
    ("status", "text"),
    ("started_at", "ts"),
    ("finished_at", "ts"),
    ("host", "text"),
    ("params", "json"),
]

RESULTS: list[Column] = [
    ("scan_id", "text"),
    ("ip", "text"),
    ("port", "int"),
    ("hostname", "text"),
    ("ts", "ts"),
    ("duration_ms", "double"),
    ("status", "text"),
    ("error", "text"),
    ("is_exchange", "bool"),
    ("build", "text"),
    ("precision", "text"),
    ("product", "text"),
    ("cu", "text"),
    ("su", "text"),
    ("eol", "bool"),
    ("known", "bool"),
    ("sources", "text[]"),
    ("vulnerable", "bool"),
    ("vulnerable_cves", "text[]"),
    ("patched_cves", "text[]"),
    ("undetermined_cves", "text[]"),
    ("cve_ids", "text[]"),
    ("http_status", "int"),
    ("server", "text"),
    ("tls_subject_cn", "text"),
    ("tls_subject", "text"),
    ("tls_issuer", "text"),
    ("tls_not_after", "text"),
    ("tls_sha256", "text"),
    ("ntlm_dns_domain", "text"),
    ("ntlm_dns_computer", "text"),
    ("ntlm_netbios_domain", "text"),
    ("ntlm_netbios_computer", "text"),
    ("x_feserver", "text"),
    ("shard", "text"),
    ("record", "json"),
]
RESULT_COLUMNS = [name for name, _ in RESULTS]

INGESTED_FILES: list[Column] = [
    ("sha256", "text"),
    ("path", "text"),
    ("ingested_at", "ts"),
    ("lines", "bigint"),
    ("new_rows", "bigint"),
    ("duplicates", "bigint"),
    ("bad_lines", "bigint"),
]

ENRICH_PROFILES: list[Column] = [
    ("profile_id", "text"),
    ("options", "json"),
    ("sources", "json"),
    ("created_at", "ts"),
]

ENRICHMENT: list[Column] = [
    ("scan_id", "text"),
    ("ip", "text"),
    ("port", "int"),
    ("ts", "ts"),
    ("ip_sort", "text"),
    ("country", "text"),
    ("country_source", "text"),
    ("asn", "bigint"),
    ("as_name", "text"),
    ("asn_source", "text"),
    ("organisation", "text"),
    ("sector", "text"),
    ("matched_by", "text"),
    ("confidence", "text"),
    ("ptr", "text"),
    ("status", "text"),
    ("is_exchange", "bool"),
    ("vulnerable", "bool"),
    ("eol", "bool"),
    ("build", "text"),
    ("product", "text"),
    ("cu", "text"),
    ("vulnerable_cves", "text[]"),
    ("patched_cves", "text[]"),
    ("undetermined_cves", "text[]"),
    ("cve_ids", "text[]"),
    ("evidence", "json"),
    ("enriched_at", "ts"),
    ("profile_id", "text"),
]
ENRICHMENT_COLUMNS = [name for name, _ in ENRICHMENT]

ROLLUP: list[Column] = [
    ("scan_id", "text"),
    ("dim", "text"),  # country | asn | sector | organisation | version | cve
    ("country", "text"),
    ("key", "text"),
    ("label", "text"),
    ("hosts", "bigint"),
    ("exchange", "bigint"),
    ("vulnerable", "bigint"),
    ("eol", "bigint"),
    ("patched", "bigint"),
    ("undetermined", "bigint"),
]
ROLLUP_COLUMNS = [name for name, _ in ROLLUP]

ROLLUP_STATE: list[Column] = [("scan_id", "text"), ("generation", "bigint")]

# The opt-in checks' results as typed columns (added after schema 2 shipped: created IF NOT
# EXISTS by whoever uses them first, so older schema-2 stores need no migration).
HOST_CHECKS: list[Column] = [
    ("scan_id", "text"),
    ("ip", "text"),
    ("port", "int"),
    ("ts", "ts"),
    ("checks_ran", "text[]"),
    ("compromise", "text"),  # compromised | clean-at-known-paths | unknown | NULL (not run)
    ("reason", "text"),
    ("shells", "text[]"),  # URL paths of the shells found
    ("shapes", "text[]"),
    ("proxylogon", "text"),  # readings: vulnerable, not-vulnerable, mitigated, ...
    ("proxyshell", "text"),
    ("proxynotshell", "text"),
    ("vulnerable_cves", "text[]"),  # merged verdicts of the CVEs the checks speak for
    ("mitigated_cves", "text[]"),
    ("patched_cves", "text[]"),
    ("undetermined_cves", "text[]"),
    ("settled_cves", "text[]"),  # verdicts a reading changed
    ("conflict_cves", "text[]"),  # build and behaviour disagree
]
HOST_CHECKS_STATE: list[Column] = [("scan_id", "text"), ("answered", "bigint")]

TABLES: dict[str, tuple[list[Column], tuple[str, ...]]] = {
    # name: (columns, primary key)
    "meta": ([("key", "text"), ("value", "text")], ("key",)),
    "scans": (SCANS, ("scan_id",)),
    "scan_parts": (SCAN_PARTS, ("scan_id", "part")),
    "results": (RESULTS, ()),
    "ingested_files": (INGESTED_FILES, ("sha256",)),
    "enrich_profiles": (ENRICH_PROFILES, ("profile_id",)),
    "enrichment": (ENRICHMENT, ()),
    "rollup": (ROLLUP, ()),
    "rollup_state": (ROLLUP_STATE, ("scan_id",)),
    "host_checks": (HOST_CHECKS, ()),
    "host_checks_state": (HOST_CHECKS_STATE, ("scan_id",)),
}

_NOT_NULL = {
    "scans": {"scan_id", "origin", "status"},
    "results": {"scan_id", "ip", "port", "ts", "status", "is_exchange", "vulnerable", "record"},
    "enrichment": {"scan_id", "ip", "port", "ts"},
}

_COUNTERS = {"enrich_generation", "answered", "enriched", "recorded"}

# No indexes on DuckDB: its zone maps serve scans, and ART indexes slow bulk appends and cost
# memory.  PostgreSQL needs them for the ingest anti-join, resume and per-scan reads.
POSTGRES_INDEXES = (
    "CREATE INDEX IF NOT EXISTS results_target ON results (scan_id, ip, port)",
    "CREATE INDEX IF NOT EXISTS enrichment_target ON enrichment (scan_id, ip, port, ts)",
    "CREATE INDEX IF NOT EXISTS rollup_scan ON rollup (scan_id, dim)",
    "CREATE INDEX IF NOT EXISTS host_checks_target ON host_checks (scan_id, ip, port, ts)",
)


def create_table(dialect: Dialect, name: str) -> str:
    columns, key = TABLES[name]
    not_null = _NOT_NULL.get(name, set())
    parts = [
        f"{col} {dialect.type(kind)}"
        + (" NOT NULL" if col in not_null or col in key else "")
        + (" DEFAULT 0" if col in _COUNTERS else "")
        for col, kind in columns
    ]
    if key:
        parts.append(f"PRIMARY KEY ({', '.join(key)})")
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(parts)})"


def create_all(dialect: Dialect) -> list[str]:
    statements = [create_table(dialect, name) for name in TABLES]
    if dialect.name == "postgresql":
        statements.extend(POSTGRES_INDEXES)
    return statements


def column_types(dialect: Dialect, columns: Sequence[Column]) -> dict[str, str]:
    return {name: dialect.type(kind) for name, kind in columns}


__all__ = [
    "ENRICHMENT",
    "ENRICHMENT_COLUMNS",
    "HOST_CHECKS",
    "HOST_CHECKS_STATE",
    "RESULTS",
    "RESULT_COLUMNS",
    "ROLLUP",
    "ROLLUP_COLUMNS",
    "SCHEMA_VERSION",
    "TABLES",
    "column_types",
    "create_all",
    "create_table",
]
