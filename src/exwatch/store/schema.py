"""DuckDB schema of the result store and the SQL that turns a JSON record into a typed row.

`results` keeps typed columns for grouping (status, build, vulnerable, country-ready ip...)
and the whole record as JSON, so nothing in a record is ever lost.  Record identity is
(scan_id, ip, port, ts); ingest skips rows already present.  There is no primary key on
`results`: DuckDB's ART index makes bulk appends slower and memory-hungry, and the
anti-join at ingest time does the same job.
"""

# ruff: noqa: S608
# (every statement here is built from constants at import time; values are bound parameters)

from __future__ import annotations

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR
);
CREATE TABLE IF NOT EXISTS scans (
    scan_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    origin VARCHAR NOT NULL,          -- 'scan' (run here) or 'ingest' (loaded from JSONL)
    params JSON,
    tool_version VARCHAR,
    status VARCHAR NOT NULL,          -- running | finished | interrupted | ingested
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    counts JSON                       -- {status: rows}, filled by finish_scan / ingest
);
CREATE TABLE IF NOT EXISTS results (
    scan_id VARCHAR NOT NULL,
    ip VARCHAR NOT NULL,
    port INTEGER NOT NULL,
    hostname VARCHAR,
    ts TIMESTAMPTZ NOT NULL,
    duration_ms DOUBLE,
    status VARCHAR NOT NULL,
    error VARCHAR,
    is_exchange BOOLEAN NOT NULL,
    build VARCHAR,
    precision VARCHAR,
    product VARCHAR,
    cu VARCHAR,
    su VARCHAR,
    eol BOOLEAN,
    known BOOLEAN,
    sources VARCHAR[],
    cves MAP(VARCHAR, VARCHAR),
    vulnerable BOOLEAN NOT NULL,      -- any CVE verdict is 'vulnerable'
    vulnerable_cves VARCHAR[],
    http_status INTEGER,
    server VARCHAR,
    tls_subject_cn VARCHAR,
    tls_issuer VARCHAR,
    tls_not_after VARCHAR,
    tls_sha256 VARCHAR,
    ntlm_dns_domain VARCHAR,
    ntlm_dns_computer VARCHAR,
    ntlm_netbios_domain VARCHAR,
    record JSON NOT NULL
);
CREATE TABLE IF NOT EXISTS ingested_files (
    sha256 VARCHAR PRIMARY KEY,
    path VARCHAR,
    ingested_at TIMESTAMPTZ,
    lines BIGINT,
    new_rows BIGINT,
    duplicates BIGINT,
    bad_lines BIGINT
);
"""

# One JSON parse per record: json_transform yields NULL for fields of the wrong type, so a
# hostile or buggy record degrades to NULL columns instead of failing the batch.
_SHAPE = (
    '{"scan_id": "VARCHAR", "ip": "VARCHAR", "port": "INTEGER", "hostname": "VARCHAR",'
    ' "timestamp": "VARCHAR", "duration_ms": "DOUBLE", "status": "VARCHAR", "error": "VARCHAR",'
    ' "exchange": {"build": "VARCHAR", "precision": "VARCHAR", "product": "VARCHAR",'
    ' "cu": "VARCHAR", "su": "VARCHAR", "eol": "BOOLEAN", "known": "BOOLEAN",'
    ' "sources": ["VARCHAR"]},'
    ' "cves": "MAP(VARCHAR, VARCHAR)", "http_status": "INTEGER",'
    ' "headers": {"server": "VARCHAR"},'
    ' "tls": {"subject_cn": "VARCHAR", "issuer": "VARCHAR", "not_after": "VARCHAR",'
    ' "sha256": "VARCHAR"},'
    ' "ntlm": {"dns_domain": "VARCHAR", "dns_computer": "VARCHAR",'
    ' "netbios_domain": "VARCHAR"}}'
)

# `staged(j JSON)` -> rows of `results` (NULL ip/port/ts rows are filtered by the caller).
# $1 is the scan_id used when a record carries none.
TYPED_SELECT = f"""
SELECT
    coalesce(r.scan_id, $1) AS scan_id,
    r.ip AS ip,
    r.port AS port,
    r.hostname AS hostname,
    TRY_CAST(r.timestamp AS TIMESTAMPTZ) AS ts,
    r.duration_ms AS duration_ms,
    coalesce(r.status, 'unknown-error') AS status,
    r.error AS error,
    coalesce(json_type(j, '$.exchange') = 'OBJECT', false) AS is_exchange,
    r.exchange.build AS build,
    r.exchange.precision AS precision,
    r.exchange.product AS product,
    r.exchange.cu AS cu,
    r.exchange.su AS su,
    r.exchange.eol AS eol,
    r.exchange.known AS known,
    r.exchange.sources AS sources,
    r.cves AS cves,
    coalesce(list_contains(map_values(r.cves), 'vulnerable'), false) AS vulnerable,
    list_sort([e.key FOR e IN map_entries(r.cves) IF e.value = 'vulnerable']) AS vulnerable_cves,
    r.http_status AS http_status,
    r.headers.server AS server,
    r.tls.subject_cn AS tls_subject_cn,
    r.tls.issuer AS tls_issuer,
    r.tls.not_after AS tls_not_after,
    r.tls.sha256 AS tls_sha256,
    r.ntlm.dns_domain AS ntlm_dns_domain,
    r.ntlm.dns_computer AS ntlm_dns_computer,
    r.ntlm.netbios_domain AS ntlm_netbios_domain,
    j AS record
FROM (SELECT j, json_transform(j, '{_SHAPE}') AS r FROM staged
      WHERE j IS NOT NULL AND json_type(j) = 'OBJECT')
"""

RESULT_COLUMNS = (
    "scan_id, ip, port, hostname, ts, duration_ms, status, error, is_exchange, build, precision,"
    " product, cu, su, eol, known, sources, cves, vulnerable, vulnerable_cves, http_status,"
    " server, tls_subject_cn, tls_issuer, tls_not_after, tls_sha256, ntlm_dns_domain,"
    " ntlm_dns_computer, ntlm_netbios_domain, record"
)

_VALID = " WHERE ip IS NOT NULL AND port IS NOT NULL AND ts IS NOT NULL AND scan_id IS NOT NULL"

# The scanner's own batches: straight in, no materialised intermediate.  $1: default scan_id.
INSERT_DIRECT = f"INSERT INTO results ({RESULT_COLUMNS}) SELECT * FROM ({TYPED_SELECT}){_VALID}"

# Ingest: materialise typed rows (to count and dedup), then insert the new ones only,
# skipping rows already stored and repeats inside the file itself.
CREATE_TYPED = f"CREATE OR REPLACE TEMP TABLE typed AS SELECT * FROM ({TYPED_SELECT}){_VALID}"
INSERT_NEW_FROM_TYPED = (
    f"INSERT INTO results ({RESULT_COLUMNS}) SELECT {RESULT_COLUMNS} FROM typed t"
    " WHERE NOT EXISTS (SELECT 1 FROM results r WHERE r.scan_id = t.scan_id AND r.ip = t.ip"
    " AND r.port = t.port AND r.ts = t.ts)"
    " QUALIFY row_number() OVER (PARTITION BY scan_id, ip, port, ts) = 1"
)

EXPORT_ALL = "COPY (SELECT * FROM results) TO $path (FORMAT parquet, COMPRESSION zstd)"
EXPORT_SCAN = (
    "COPY (SELECT * FROM results WHERE scan_id = $scan) TO $path (FORMAT parquet, COMPRESSION zstd)"
)

__all__ = [
    "CREATE_TYPED",
    "DDL",
    "EXPORT_ALL",
    "EXPORT_SCAN",
    "INSERT_DIRECT",
    "INSERT_NEW_FROM_TYPED",
    "RESULT_COLUMNS",
    "SCHEMA_VERSION",
    "TYPED_SELECT",
]
