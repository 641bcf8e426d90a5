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

# One pass over the scan: each assessed CVE of each Exchange host, with its verdict.
_CVES = """
SELECT 'cve' AS dim, country, cve AS key, NULL AS label,
       count(*) AS hosts, count(*) AS exchange,
       count(*) FILTER (WHERE verdict = 'v') AS vulnerable,
       count(*) FILTER (WHERE verdict = 'v' AND eol) AS eol,
       count(*) FILTER (WHERE verdict = 'p') AS patched,
       count(*) FILTER (WHERE verdict = 'u') AS undetermined
FROM (
    SELECT country, eol, cve,
           CASE WHEN {vulnerable} THEN 'v' WHEN {patched} THEN 'p'
                WHEN {undetermined} THEN 'u' ELSE 'n' END AS verdict
    FROM (SELECT country, coalesce(eol, FALSE) AS eol, vulnerable_cves, patched_cves,
                 undetermined_cves, unnest(cve_ids) AS cve
          FROM enrichment WHERE scan_id = ? AND is_exchange) u
) c
GROUP BY country, cve
"""

RollupRow = tuple[Any, ...]  # dim, country, key, label, hosts, exchange, vulnerable, eol, ...

# Read-only stores: rollups computed in memory, per store object and scan.
_MEMORY: dict[tuple[int, str], list[RollupRow]] = {}


def _compute(store: Store, scan_id: str) -> list[RollupRow]:
    d = store.dialect
    with store.transaction():
        store.tune_for_aggregation()
        groups = store.query(_GROUPS, [scan_id])
        cves = _CVES.format(
            vulnerable=d.array_has("vulnerable_cves", "cve"),
            patched=d.array_has("patched_cves", "cve"),
            undetermined=d.array_has("undetermined_cves", "cve"),
        )
        extra = store.query(cves, [scan_id])
    # Grouping sets give every set's rows; keep the version rows of Exchange hosts only.
    rows = [r for r in groups if not (r[0] == "version" and r[2] is None)]
    rows.extend(extra)
    return [(scan_id, *r) for r in rows]


class Accumulator:
    """The rollup of rows as they are enriched (so a new scan's rollup costs no extra pass).

    Same arithmetic as _GROUPS and _CVES, in Python, over enrichment rows as written."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str | None, str | None], list[Any]] = {}

    def _add(
        self, dim: str, country: str | None, key: str | None, label: str | None,
        counts: tuple[int, int, int, int, int, int],
    ) -> None:  # fmt: skip
        cell = self.cells.get((dim, country, key))
        if cell is None:
            self.cells[(dim, country, key)] = [label, *counts]
            return
        if label is not None and (cell[0] is None or label < cell[0]):
            cell[0] = label
        for i, n in enumerate(counts, start=1):
            cell[i] += n

    def add(self, row: dict[str, Any]) -> None:
        """One enrichment row, as a dict of ENRICHMENT columns."""
        x = bool(row["is_exchange"])
        v = x and bool(row["vulnerable"])
        eol = x and bool(row["eol"])
        counts = (1, int(x), int(v), int(eol), 0, 0)
        country = row["country"]
        asn = row["asn"]
        self._add("country", country, country, None, counts)
        self._add("asn", country, None if asn is None else str(asn), row["as_name"], counts)
        self._add("sector", country, row["sector"] or "unknown", None, counts)
        self._add("organisation", country, row["organisation"], row["sector"], counts)
        if x:
            label = " ".join(p for p in (row["product"], row["cu"]) if p is not None)
            self._add(
                "version",
                country,
                row["build"] or HIDDEN_BUILD,
                label,
                (1, 1, int(v), int(eol), 0, 0),
            )
            vulnerable = set(row["vulnerable_cves"] or ())
            patched = set(row["patched_cves"] or ())
            undetermined = set(row["undetermined_cves"] or ())
            for cve in row["cve_ids"] or ():
                hit = cve in vulnerable
                self._add(
                    "cve", country, cve, None,
                    (1, 1, int(hit), int(hit and eol), int(not hit and cve in patched),
                     int(not hit and cve not in patched and cve in undetermined)),
                )  # fmt: skip

    def rows(self, scan_id: str) -> list[RollupRow]:
        return [
            (scan_id, dim, country, key, *cell) for (dim, country, key), cell in self.cells.items()
        ]


def is_current(store: Store, scan_id: str) -> bool:
    built = store.scalar("SELECT generation FROM rollup_state WHERE scan_id = ?", [scan_id])
    generation = store.scalar(
        "SELECT coalesce(enrich_generation, 0) FROM scans WHERE scan_id = ?", [scan_id]
    )
    return built is not None and generation is not None and int(built) == int(generation)


def add(store: Store, scan_id: str, acc: Accumulator, *, fresh: bool) -> None:
    """Fold newly enriched rows into the scan's rollup, inside the caller's transaction.

    `fresh`: the rollup was current before these rows, or the scan had no enrichment at all
    (then these rows are all of it).  Otherwise the rollup is left stale for a full build."""
    if not fresh:
        return
    store.bulk_insert("rollup", ROLLUP, acc.rows(scan_id))
    # Sum the pieces so that a scan enriched in many small steps keeps one row per cell.
    store.staging_table("rollup_sum", ROLLUP)
    store.execute(
        "INSERT INTO rollup_sum SELECT scan_id, dim, country, key, min(label), sum(hosts),"
        " sum(exchange), sum(vulnerable), sum(eol), sum(patched), sum(undetermined)"
        " FROM rollup WHERE scan_id = ? GROUP BY scan_id, dim, country, key",
        [scan_id],
    )
    store.execute("DELETE FROM rollup WHERE scan_id = ?", [scan_id])
    store.execute("INSERT INTO rollup SELECT * FROM rollup_sum")
    store.drop_staging("rollup_sum")
    _mark(store, scan_id)


def _mark(store: Store, scan_id: str) -> None:
    generation = store.scalar(
        "SELECT coalesce(enrich_generation, 0) FROM scans WHERE scan_id = ?", [scan_id]
    )
    store.execute("DELETE FROM rollup_state WHERE scan_id = ?", [scan_id])
    store.execute(
        "INSERT INTO rollup_state (scan_id, generation) VALUES (?, ?)",
        [scan_id, int(generation or 0)],
    )


def ensure(store: Store, scan_id: str) -> None:
    """Build the scan's rollup if its enrichment changed since it was built."""
    if store.read_only or is_current(store, scan_id):
        return
    with store.transaction():
        store.lock(f"enrich:{scan_id}")
        if is_current(store, scan_id):  # another process built it while we waited
            return
        rows = _compute(store, scan_id)
        store.execute("DELETE FROM rollup WHERE scan_id = ?", [scan_id])
        store.bulk_insert("rollup", ROLLUP, rows)
        _mark(store, scan_id)


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


_COUNTS = ("hosts", "exchange", "vulnerable", "eol", "patched", "undetermined")


def merged(
    store: Store, scan_id: str, dim: str, country: str | None = None, limit: int | None = None
) -> list[tuple[Any, ...]]:
    """(key, label, hosts, exchange, vulnerable, eol, patched, undetermined) per key of one
    dimension, summed over countries (or of one country), most vulnerable first."""
    if store.read_only:
        cells: dict[Any, list[Any]] = {}
        for _, key, label, *counts in rows(store, scan_id, dim, country):
            cell = cells.setdefault(key, [label, 0, 0, 0, 0, 0, 0])
            if cell[0] is None or (label is not None and label < cell[0]):
                cell[0] = label if label is not None else cell[0]
            for i, n in enumerate(counts, start=1):
                cell[i] += int(n or 0)
        out = [(key, *cell) for key, cell in cells.items()]
        out.sort(key=lambda r: (-r[4], -r[3], -r[2], r[0] is None, str(r[0])))
        return out[:limit] if limit is not None else out
    ensure(store, scan_id)
    sums = ", ".join(f"CAST(sum({c}) AS BIGINT) AS {c}" for c in _COUNTS)
    sql = f"SELECT key, min(label), {sums} FROM rollup WHERE scan_id = ? AND dim = ?"
    args: list[Any] = [scan_id, dim]
    if country is not None:
        sql += " AND country = ?"
        args.append(country)
    sql += " GROUP BY key ORDER BY vulnerable DESC, exchange DESC, hosts DESC, key NULLS LAST"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return store.query(sql, args)


__all__ = [
    "DIMS",
    "HIDDEN_BUILD",
    "Accumulator",
    "add",
    "ensure",
    "is_current",
    "merged",
    "rows",
]
