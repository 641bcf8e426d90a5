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
  rollup_builds   per scan, dimension, country, key and build: Exchange hosts, vulnerable, with
                  a known-exploited (KEV) CVE, EOL (patch lag is derived from the build)
  rollup_builds_state  the enrich_generation and KEV list each scan's rollup_builds was built from
  web_groups      the web interface's drill-down counts per scan (created when first needed)
  web_groups_state what each scan's web_groups were built from
  web_names       DuckDB: each result's host names (target, certificate CN, NTLM computer)
                  lower-cased, sorted by name, for the web search (created when first needed)
  web_names_state what each scan's web_names were built from (its results' count and newest ts)

Tables `exwatch notify` keeps (docs/notify.md describes every column).  They are created IF
NOT EXISTS whenever a store is opened writable, so schema-2 stores gain them without a
migration; readers check `has_table` first.
  notifications       one message: recipients, kind, state (pending/sent/failed), Message-ID,
                      the raw message (a retry resends it byte for byte)
  notification_items  one host finding (a CVE, or `compromise`) listed in one message
  notify_cases        one finding of one host from its first message until a later scan
                      shows it gone: reminders, escalation, fixed at
  security_txt        the security.txt (RFC 9116) fetched per domain, reused for a while

  census          a distributed census (exwatch census submit): what its workers need to scan
                  (targets, exclusion lists by content, user agent, probe settings), its queue,
                  task size and deadline, and the shared schedule of its global rate budget
  census_tasks    one row per task (a range of positions of the census's permutation): status,
                  attempts, the worker running it, progress counters, the last error
  census_checks   one row per host a census's opt-in checks (--check) claimed: which task's
                  attempt claimed it, what the checks found once they ended, and whether a
                  stored record carries it (each host is checked once per census)

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

# Exchange hosts per group and build (patch lag is a function of the build, computed by the
# report), added after schema 2 shipped: created IF NOT EXISTS by the first report that
# needs it, so older schema-2 stores need no migration.
ROLLUP_BUILDS: list[Column] = [
    ("scan_id", "text"),
    ("dim", "text"),  # country | asn | sector | organisation
    ("country", "text"),
    ("key", "text"),
    ("build", "text"),  # NULL: build hidden
    ("hosts", "bigint"),  # on-prem Exchange hosts
    ("vulnerable", "bigint"),
    ("kev", "bigint"),  # with a vulnerable CVE in CISA's KEV catalog
    ("eol", "bigint"),
]
ROLLUP_BUILDS_STATE: list[Column] = [
    ("scan_id", "text"),
    ("generation", "bigint"),
    ("kev", "text"),  # the KEV CVE ids the kev counts used, comma-joined
]
# The web interface's drill-down counts (country > AS/sector > organisation), with KEV,
# patch lag and compromise counts the report rollup does not keep (see web/groups.py).
WEB_GROUPS: list[Column] = [
    ("scan_id", "text"),
    ("level", "text"),  # country | asn | sector | asn_org | sector_org
    ("country", "text"),
    ("asn", "bigint"),
    ("sector", "text"),
    ("organisation", "text"),
    ("label", "text"),  # AS name (asn levels), sector (organisation levels)
    ("hosts", "bigint"),
    ("exchange", "bigint"),
    ("vulnerable", "bigint"),
    ("kev", "bigint"),
    ("eol", "bigint"),
    ("lag_hosts", "bigint"),  # Exchange hosts whose build has a patch lag
    ("lag_days", "bigint"),  # sum of their days behind the newest update of their line
    ("behind", "bigint"),  # Exchange hosts at least one update behind their CU's newest
    ("checked", "bigint"),  # Exchange hosts whose compromise was checked
    ("compromised", "bigint"),
]
WEB_GROUPS_COLUMNS = [name for name, _ in WEB_GROUPS]
WEB_GROUPS_STATE: list[Column] = [("scan_id", "text"), ("stamp", "text")]
# The web search's host names on DuckDB (web/names.py): stored sorted by name, so a prefix
# search reads the few row groups whose zone maps hold it instead of every result.
WEB_NAMES: list[Column] = [
    ("scan_id", "text"),
    ("name", "text"),  # lower(hostname | tls_subject_cn | ntlm_dns_computer)
    ("ip", "text"),
    ("port", "int"),
    ("ts", "ts"),
    ("hostname", "text"),
    ("cert_cn", "text"),
    ("ntlm_computer", "text"),  # ntlm_dns_computer
    ("build", "text"),
    ("status", "text"),
]
WEB_NAMES_STATE: list[Column] = [("scan_id", "text"), ("stamp", "text")]
NOTIFICATIONS: list[Column] = [
    ("notification_id", "text"),
    ("run_id", "text"),
    ("scan_id", "text"),  # the scan whose findings the message reports
    ("kind", "text"),  # initial | follow-up | reminder | escalation
    ("state", "text"),  # pending | sent | failed
    ("recipients", "text[]"),  # To
    ("cc", "text[]"),
    ("contact_key", "text"),  # the sorted To addresses: one message per contact per run
    ("organisation", "text"),
    ("sector", "text"),
    ("country", "text"),
    ("language", "text"),
    ("contact_source", "text"),  # contacts | constituency | security.txt
    ("contact_reason", "text"),
    ("subject", "text"),
    ("message_id", "text"),
    ("hosts", "text[]"),  # ip:port ([v6]:port) of every host listed
    ("host_count", "int"),
    ("finding_count", "int"),
    ("findings", "json"),  # [{ip, port, finding, role, kev}]
    ("created_at", "ts"),
    ("sent_at", "ts"),
    ("attempts", "int"),
    ("last_error", "text"),
    ("smtp_reply", "text"),
    ("message", "text"),  # the RFC 5322 message as handed to the server
    ("cases_applied", "bool"),  # its cases were opened or moved on (done in batches)
]

NOTIFICATION_ITEMS: list[Column] = [
    ("notification_id", "text"),
    ("case_id", "text"),
    ("ip", "text"),
    ("port", "int"),
    ("finding", "text"),  # a CVE id, or "compromise"
    ("role", "text"),  # new | reminder | escalation
    ("organisation", "text"),  # the host's, as enriched when the message was made
    ("sector", "text"),
    ("country", "text"),
    ("seen_at", "ts"),  # the host's time in the scan the message reports
]

NOTIFY_CASES: list[Column] = [
    ("case_id", "text"),
    ("ip", "text"),
    ("port", "int"),
    ("finding", "text"),
    ("state", "text"),  # open | closed
    ("organisation", "text"),
    ("sector", "text"),
    ("country", "text"),
    ("contact_key", "text"),
    ("opened_scan", "text"),
    ("opened_at", "ts"),  # when the first message naming it was accepted by the server
    ("first_notification", "text"),
    ("last_sent_at", "ts"),
    ("last_notification", "text"),
    ("reminders", "int"),
    ("escalated_at", "ts"),
    ("last_seen_scan", "text"),  # latest scan that still showed it
    ("last_seen_at", "ts"),
    ("seen_after", "int"),  # later scans that still showed it after the first message
    ("closed_at", "ts"),  # time of the host in the scan that showed it gone
    ("closed_scan", "text"),
    # patched | updated | not-vulnerable | not-exchange | exchange-online | suspect | clean
    ("close_reason", "text"),
]

SECURITY_TXT: list[Column] = [
    ("domain", "text"),
    ("fetched_at", "ts"),
    ("status", "text"),  # found | absent | expired | invalid | refused | error
    ("url", "text"),
    ("contacts", "text[]"),  # every Contact: URI, in the file's order
    ("languages", "text[]"),  # Preferred-Languages
    ("expires", "ts"),
    ("detail", "text"),
]

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

# The hosts a census's opt-in checks claimed (store/census.py): at most one claim per host,
# so a host is checked once however often its task runs again; the result is kept so that a
# later attempt of the same task reuses it when the record that carried it was lost.
CENSUS_CHECKS: list[Column] = [
    ("scan_id", "text"),
    ("ip", "text"),
    ("port", "int"),
    ("task", "bigint"),  # the task whose attempt holds the claim
    ("run", "text"),  # that attempt (its own id: `census retry` numbers attempts afresh)
    ("claimed_at", "ts"),
    ("result", "json"),  # the record's `checks` object; NULL while they run or if cut short
    ("compromised", "bool"),
    ("stored", "bool"),  # a stored record carries the result
]

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
    "rollup_builds": (ROLLUP_BUILDS, ()),
    "rollup_builds_state": (ROLLUP_BUILDS_STATE, ("scan_id",)),
    "web_groups": (WEB_GROUPS, ()),
    "web_groups_state": (WEB_GROUPS_STATE, ("scan_id",)),
    "web_names": (WEB_NAMES, ()),
    "web_names_state": (WEB_NAMES_STATE, ("scan_id",)),
    "notifications": (NOTIFICATIONS, ("notification_id",)),
    "notification_items": (NOTIFICATION_ITEMS, ()),
    "notify_cases": (NOTIFY_CASES, ("case_id",)),
    "security_txt": (SECURITY_TXT, ("domain",)),
    "census": (CENSUS, ("scan_id",)),
    "census_tasks": (CENSUS_TASKS, ("scan_id", "task")),
    "census_checks": (CENSUS_CHECKS, ("scan_id", "ip", "port")),
    "host_checks": (HOST_CHECKS, ()),
    "host_checks_state": (HOST_CHECKS_STATE, ("scan_id",)),
}
# Tables added to schema 2 after it shipped: created IF NOT EXISTS on every writable open
# (no version bump; nothing existing changes).
LATER_TABLES = (
    "rollup_builds", "rollup_builds_state", "web_groups", "web_groups_state",
    "notifications", "notification_items", "notify_cases", "security_txt", "census",
    "census_tasks", "host_checks", "host_checks_state",
    "web_names", "web_names_state", "census_checks",
)  # fmt: skip

_NOT_NULL = {
    "scans": {"scan_id", "origin", "status"},
    "results": {"scan_id", "ip", "port", "ts", "status", "is_exchange", "vulnerable", "record"},
    "enrichment": {"scan_id", "ip", "port", "ts"},
    "notifications": {"run_id", "kind", "state", "contact_key", "created_at"},
    "notification_items": {"notification_id", "case_id", "ip", "port", "finding", "role"},
    "notify_cases": {"ip", "port", "finding", "state"},
    "census": {"status", "settings"},
    "census_tasks": {"start_pos", "stop_pos", "status"},
}

_COUNTERS = {
    "enrich_generation", "answered", "enriched", "recorded", "attempts", "reminders", "seen_after",
}  # fmt: skip

# No indexes on DuckDB: its zone maps serve scans, and ART indexes slow bulk appends and cost
# memory.  PostgreSQL needs them for the ingest anti-join, resume and per-scan reads.
POSTGRES_INDEXES = (
    "CREATE INDEX IF NOT EXISTS results_target ON results (scan_id, ip, port)",
    "CREATE INDEX IF NOT EXISTS enrichment_target ON enrichment (scan_id, ip, port, ts)",
    "CREATE INDEX IF NOT EXISTS rollup_scan ON rollup (scan_id, dim)",
    "CREATE INDEX IF NOT EXISTS rollup_builds_scan ON rollup_builds (scan_id, dim, key)",
    "CREATE INDEX IF NOT EXISTS notify_cases_host ON notify_cases (ip, port, state)",
    "CREATE INDEX IF NOT EXISTS notification_items_id ON notification_items (notification_id)",
    # A census ends when no task is open: found without reading every task of the census.
    "CREATE INDEX IF NOT EXISTS census_tasks_status ON census_tasks (scan_id, status)",
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
    "CENSUS_CHECKS",
    "CENSUS_TASKS",
    "ENRICHMENT",
    "ENRICHMENT_COLUMNS",
    "HOST_CHECKS",
    "HOST_CHECKS_STATE",
    "LATER_TABLES",
    "NOTIFICATIONS",
    "NOTIFICATION_ITEMS",
    "NOTIFY_CASES",
    "RESULTS",
    "RESULT_COLUMNS",
    "ROLLUP",
    "ROLLUP_BUILDS",
    "ROLLUP_COLUMNS",
    "SCHEMA_VERSION",
    "SECURITY_TXT",
    "TABLES",
    "WEB_GROUPS",
    "WEB_GROUPS_COLUMNS",
    "WEB_NAMES",
    "column_types",
    "create_all",
    "create_later",
    "create_table",
]
