"""Per-scan pre-aggregation: counts per dimension, country and key, built once per change.

A report over a 10-million-row scan reads a few thousand rollup rows instead of the scan:
the rollup is built in one GROUPING SETS pass (plus one pass over the CVE arrays) the first
time a scan is reported after its enrichment changed (`scans.enrich_generation`), and kept
in the `rollup` table.  A read-only store computes it in memory for the command's lifetime.

Row meaning per dimension (hosts, exchange, vulnerable, eol):
  country, asn, sector, organisation: answering hosts; Exchange among them; vulnerable and
      end-of-life Exchange hosts.
  version: Exchange hosts only (hosts = exchange).
  cve: Exchange hosts with a verdict for the CVE; vulnerable (and vulnerable + EOL), patched
      and undetermined among them.
"""

# SQL here is assembled from fixed column names of this module; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

from typing import Any

from exwatch.store import Store
from exwatch.store.schema import ROLLUP

DIMS = ("country", "asn", "sector", "organisation", "version", "cve")
HIDDEN_BUILD = "~hidden"  # version key of Exchange hosts whose build is hidden

_GROUPS = f"""
SELECT
    CASE WHEN GROUPING(asn) = 0 THEN 'asn' WHEN GROUPING(sector) = 0 THEN 'sector'
         WHEN GROUPING(organisation) = 0 THEN 'organisation'
         WHEN GROUPING(vkey) = 0 THEN 'version' ELSE 'country' END AS dim,
    country,
    CASE WHEN GROUPING(asn) = 0 THEN CAST(asn AS VARCHAR)
         WHEN GROUPING(sector) = 0 THEN sector
         WHEN GROUPING(organisation) = 0 THEN organisation
         WHEN GROUPING(vkey) = 0 THEN vkey ELSE country END AS key,
    CASE WHEN GROUPING(asn) = 0 THEN min(as_name)
         WHEN GROUPING(organisation) = 0 THEN min(sector)
         WHEN GROUPING(vkey) = 0 THEN min(vlabel) END AS label,
    CASE WHEN GROUPING(vkey) = 0 THEN count(*) FILTER (WHERE x) ELSE count(*) END AS hosts,
    count(*) FILTER (WHERE x) AS exchange,
    count(*) FILTER (WHERE x AND v) AS vulnerable,
    count(*) FILTER (WHERE x AND eol) AS eol,
    0 AS patched, 0 AS undetermined
FROM (
    SELECT country, asn, as_name, coalesce(sector, 'unknown') AS sector, organisation,
           CASE WHEN is_exchange THEN coalesce(build, '{HIDDEN_BUILD}') END AS vkey,
           CASE WHEN is_exchange THEN concat_ws(' ', product, cu) END AS vlabel,
           coalesce(is_exchange, FALSE) AS x, coalesce(vulnerable, FALSE) AS v,
           coalesce(eol, FALSE) AS eol
    FROM enrichment WHERE scan_id = ?
) e
GROUP BY GROUPING SETS ((country), (country, asn), (country, sector), (country, organisation),
                        (country, vkey))
"""

_CVES = """
SELECT 'cve' AS dim, country, cve AS key, NULL AS label,
       count(*) FILTER (WHERE verdict = 'any') AS hosts,
       count(*) FILTER (WHERE verdict = 'any') AS exchange,
       count(*) FILTER (WHERE verdict = 'vulnerable') AS vulnerable,
       count(*) FILTER (WHERE verdict = 'vulnerable' AND eol) AS eol,
       count(*) FILTER (WHERE verdict = 'patched') AS patched,
       count(*) FILTER (WHERE verdict = 'undetermined') AS undetermined
FROM (
    SELECT country, coalesce(eol, FALSE) AS eol, unnest(cve_ids) AS cve, 'any' AS verdict
        FROM enrichment WHERE scan_id = ? AND is_exchange
    UNION ALL
    SELECT country, coalesce(eol, FALSE), unnest(vulnerable_cves), 'vulnerable'
        FROM enrichment WHERE scan_id = ? AND is_exchange
    UNION ALL
    SELECT country, coalesce(eol, FALSE), unnest(patched_cves), 'patched'
        FROM enrichment WHERE scan_id = ? AND is_exchange
    UNION ALL
    SELECT country, coalesce(eol, FALSE), unnest(undetermined_cves), 'undetermined'
        FROM enrichment WHERE scan_id = ? AND is_exchange
) c
GROUP BY country, cve
"""

RollupRow = tuple[Any, ...]  # dim, country, key, label, hosts, exchange, vulnerable, eol, ...

# Read-only stores: rollups computed in memory, per store object and scan.
_MEMORY: dict[tuple[int, str], list[RollupRow]] = {}


def _compute(store: Store, scan_id: str) -> list[RollupRow]:
    groups = store.query(_GROUPS, [scan_id])
    # Grouping sets give every set's rows; keep the version rows of Exchange hosts only.
    rows = [r for r in groups if not (r[0] == "version" and r[2] is None)]
    rows.extend(store.query(_CVES, [scan_id] * 4))
    return [(scan_id, *r) for r in rows]


def ensure(store: Store, scan_id: str) -> None:
    """Build the scan's rollup if its enrichment changed since it was built."""
    if store.read_only:
        return
    generation = store.scalar(
        "SELECT coalesce(enrich_generation, 0) FROM scans WHERE scan_id = ?", [scan_id]
    )
    built = store.scalar("SELECT generation FROM rollup_state WHERE scan_id = ?", [scan_id])
    if built is not None and generation is not None and int(built) == int(generation):
        return
    with store.transaction():
        store.lock(f"rollup:{scan_id}")
        # Another process may have built it while we waited for the lock.
        built = store.scalar("SELECT generation FROM rollup_state WHERE scan_id = ?", [scan_id])
        generation = store.scalar(
            "SELECT coalesce(enrich_generation, 0) FROM scans WHERE scan_id = ?", [scan_id]
        )
        if built is not None and generation is not None and int(built) == int(generation):
            return
        rows = _compute(store, scan_id)
        store.execute("DELETE FROM rollup WHERE scan_id = ?", [scan_id])
        store.bulk_insert("rollup", ROLLUP, rows)
        store.execute("DELETE FROM rollup_state WHERE scan_id = ?", [scan_id])
        store.execute(
            "INSERT INTO rollup_state (scan_id, generation) VALUES (?, ?)",
            [scan_id, int(generation or 0)],
        )


def rows(store: Store, scan_id: str, dim: str, country: str | None = None) -> list[RollupRow]:
    """(country, key, label, hosts, exchange, vulnerable, eol, patched, undetermined) rows of
    one dimension of a scan, optionally of one country."""
    if store.read_only:
        cached = _MEMORY.get((id(store), scan_id))
        if cached is None:
            cached = _MEMORY[(id(store), scan_id)] = _compute(store, scan_id)
        return [
            tuple(r[2:]) for r in cached if r[1] == dim and (country is None or r[2] == country)
        ]
    ensure(store, scan_id)
    sql = (
        "SELECT country, key, label, hosts, exchange, vulnerable, eol, patched, undetermined"
        " FROM rollup WHERE scan_id = ? AND dim = ?"
    )
    args: list[Any] = [scan_id, dim]
    if country is not None:
        sql += " AND country = ?"
        args.append(country)
    return store.query(sql, args)


__all__ = ["DIMS", "HIDDEN_BUILD", "ensure", "rows"]
