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
  census          a distributed census (exwatch census submit): what its workers need to scan
                  (targets, exclusion lists by content, user agent, probe settings), its queue,
                  task size and deadline, and the shared schedule of its global rate budget
  census_tasks    one row per task (a range of positions of the census's permutation): status,
                  attempts, the worker running it, progress counters, the last error

The census tables came after schema 2 was released (LATER_TABLES); stores of schema 2 gain
them when opened for writing (CREATE TABLE IF NOT EXISTS), so they need no version of their
own.
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

CENSUS: list[Column] = [
    ("scan_id", "text"),  # the census is one scan: every task writes results under this id
    ("queue", "text"),
    ("broker", "text"),  # the broker URL without its password (for messages)
    ("settings", "json"),  # everything a worker needs to scan a task (census/plan.py)
    ("status", "text"),  # queued | running | finished | incomplete | cancelled
    ("targets", "bigint"),
    ("positions", "bigint"),  # cycle positions of the permutation, split into tasks
    ("task_size", "bigint"),
    ("tasks", "bigint"),
    ("deadline", "double"),  # seconds a task may run
    ("max_attempts", "int"),
    ("rate", "double"),  # new connections per second across all workers, or NULL
    ("rate_next", "double"),  # epoch seconds of the next free slot of the rate budget
    ("created_at", "ts"),
    ("started_at", "ts"),  # when the first task started
    ("finished_at", "ts"),
]

CENSUS_TASKS: list[Column] = [
    ("scan_id", "text"),
    ("task", "bigint"),
    ("start_pos", "bigint"),
    ("stop_pos", "bigint"),
    ("status", "text"),  # pending | running | retrying | done | parked | cancelled
    ("attempts", "int"),
    ("worker", "text"),  # host:pid of the latest attempt
    ("started_at", "ts"),
    ("updated_at", "ts"),
    ("finished_at", "ts"),
    ("scanned", "bigint"),  # results stored by all attempts together
    ("exchange", "bigint"),
    ("vulnerable", "bigint"),
    ("error", "text"),
]

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
    "census": (CENSUS, ("scan_id",)),
    "census_tasks": (CENSUS_TASKS, ("scan_id", "task")),
}
# Tables added to schema 2 after it shipped; whoever uses one creates it IF NOT EXISTS first.
LATER_TABLES = ("census", "census_tasks")

_NOT_NULL = {
    "scans": {"scan_id", "origin", "status"},
    "results": {"scan_id", "ip", "port", "ts", "status", "is_exchange", "vulnerable", "record"},
    "enrichment": {"scan_id", "ip", "port", "ts"},
    "census": {"status", "settings"},
    "census_tasks": {"start_pos", "stop_pos", "status"},
}

_COUNTERS = {"enrich_generation", "answered", "enriched", "recorded"}

# No indexes on DuckDB: its zone maps serve scans, and ART indexes slow bulk appends and cost
# memory.  PostgreSQL needs them for the ingest anti-join, resume and per-scan reads.
POSTGRES_INDEXES = (
    "CREATE INDEX IF NOT EXISTS results_target ON results (scan_id, ip, port)",
    "CREATE INDEX IF NOT EXISTS enrichment_target ON enrichment (scan_id, ip, port, ts)",
    "CREATE INDEX IF NOT EXISTS rollup_scan ON rollup (scan_id, dim)",
    # A census ends when no task is open: found without reading every task of the census.
    "CREATE INDEX IF NOT EXISTS census_tasks_status ON census_tasks (scan_id, status)",
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


def create_later(dialect: Dialect) -> list[str]:
    """The tables added to schema 2 after it shipped (and their indexes), IF NOT EXISTS: run
    whenever a schema-2 store is opened writable, so older stores gain them without a
    migration."""
    statements = [create_table(dialect, name) for name in LATER_TABLES]
    if dialect.name == "postgresql":
        statements.extend(i for i in POSTGRES_INDEXES if any(f" {t} " in i for t in LATER_TABLES))
    return statements


def column_types(dialect: Dialect, columns: Sequence[Column]) -> dict[str, str]:
    return {name: dialect.type(kind) for name, kind in columns}


__all__ = [
    "CENSUS",
    "CENSUS_TASKS",
    "ENRICHMENT",
    "ENRICHMENT_COLUMNS",
    "LATER_TABLES",
    "RESULTS",
    "RESULT_COLUMNS",
    "ROLLUP",
    "ROLLUP_COLUMNS",
    "SCHEMA_VERSION",
    "TABLES",
    "column_types",
    "create_all",
    "create_later",
    "create_table",
]
