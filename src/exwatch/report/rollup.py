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

Beside it, `rollup_builds` keeps Exchange hosts per dimension (country, asn, sector,
organisation), country, key and *build*: hosts, vulnerable, with a vulnerable CVE in CISA's
KEV catalog, and EOL.  Patch lag is a function of the build (lag.py), so every lag figure of
a group derives from these cells; the KEV counts depend on the KEV list exwatch ships, so
their state records the list they were counted with, and another list rebuilds them.  The
version dimension reads the country cells by build.  Both tables are "the scan's rollup":
current together, and counted together while enriching; `ensure` rebuilds the stale part.

"Exchange" means on-prem Exchange as `exwatch/onprem.py` decides, in SQL and in Python alike.
"""

# SQL here is assembled from fixed column names of this module; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exwatch.exposure import kev_cves
from exwatch.onprem import counts_as_on_prem, on_prem_sql
from exwatch.store import Store
from exwatch.store.schema import ROLLUP, ROLLUP_BUILDS, Column

DIMS = ("country", "asn", "sector", "organisation", "version", "cve")
BUILD_DIMS = ("country", "asn", "sector", "organisation")
HIDDEN_BUILD = "~hidden"  # version key of Exchange hosts whose build is hidden
BUILD_NOT_READ = "build not read"  # their label in every report format (key: null / empty)

_GROUPS = """
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
           CASE WHEN {on_prem} THEN coalesce(build, '{hidden}') END AS vkey,
           CASE WHEN {on_prem} THEN concat_ws(' ', product, cu) END AS vlabel,
           {on_prem} AS x, coalesce(vulnerable, FALSE) AS v,
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
          FROM enrichment WHERE scan_id = ? AND {on_prem}) u
) c
GROUP BY country, cve
"""

# Exchange hosts per group and build; `k`: a vulnerable CVE in the bound KEV list.
_BUILDS = """
SELECT
    CASE WHEN GROUPING(asn) = 0 THEN 'asn' WHEN GROUPING(sector) = 0 THEN 'sector'
         WHEN GROUPING(organisation) = 0 THEN 'organisation' ELSE 'country' END AS dim,
    country,
    CASE WHEN GROUPING(asn) = 0 THEN asn WHEN GROUPING(sector) = 0 THEN sector
         WHEN GROUPING(organisation) = 0 THEN organisation ELSE country END AS key,
    build, count(*) AS hosts, count(*) FILTER (WHERE v) AS vulnerable,
    count(*) FILTER (WHERE k) AS kev, count(*) FILTER (WHERE eol) AS eol
FROM (
    SELECT country, CAST(asn AS VARCHAR) AS asn, coalesce(sector, 'unknown') AS sector,
           organisation, build, coalesce(vulnerable, FALSE) AS v, coalesce(eol, FALSE) AS eol,
           coalesce({kev}, FALSE) AS k
    FROM enrichment WHERE scan_id = ? AND {on_prem}
) e
GROUP BY GROUPING SETS ((country, build), (country, asn, build), (country, sector, build),
                        (country, organisation, build))
"""

RollupRow = tuple[Any, ...]  # scan_id, dim, country, key, label, hosts, exchange, ...
BuildRow = tuple[Any, ...]  # scan_id, dim, country, key, build, hosts, vulnerable, kev, eol
Cell = tuple[str | None, int, int, int, int]  # build, hosts, vulnerable, kev, eol

# Read-only stores: rollups computed in memory, per store object and scan.
_MEMORY: dict[tuple[int, str], list[RollupRow]] = {}
_MEMORY_BUILDS: dict[tuple[int, str], list[BuildRow]] = {}


def kev_signature(kev: Iterable[str] | None = None) -> str:
    """A KEV list as the rollup state records it."""
    return ",".join(sorted(kev_cves() if kev is None else kev))


def _compute(store: Store, scan_id: str) -> list[RollupRow]:
    d = store.dialect
    with store.transaction():
        store.tune_for_aggregation()
        groups = store.query(_GROUPS.format(on_prem=on_prem_sql(), hidden=HIDDEN_BUILD), [scan_id])
        cves = _CVES.format(
            vulnerable=d.array_has("vulnerable_cves", "cve"),
            patched=d.array_has("patched_cves", "cve"),
            undetermined=d.array_has("undetermined_cves", "cve"),
            on_prem=on_prem_sql(),
        )
        extra = store.query(cves, [scan_id])
    # Grouping sets give every set's rows; keep the version rows of Exchange hosts only.
    rows = [r for r in groups if not (r[0] == "version" and r[2] is None)]
    rows.extend(extra)
    return [(scan_id, *r) for r in rows]


def _compute_builds(store: Store, scan_id: str, kev: frozenset[str]) -> list[BuildRow]:
    args: list[Any] = [scan_id]
    test = "FALSE"
    if kev:
        test = store.dialect.array_overlaps("vulnerable_cves")
        args.insert(0, sorted(kev))
    with store.transaction():
        store.tune_for_aggregation()
        rows = store.query(_BUILDS.format(kev=test, on_prem=on_prem_sql()), args)
    return [(scan_id, *r) for r in rows]


class Accumulator:
    """The rollup of rows as they are enriched (so a new scan's rollup costs no extra pass).

    Same arithmetic as _GROUPS, _CVES and _BUILDS, in Python, over enrichment rows as
    written."""

    def __init__(self, kev: Iterable[str] | None = None) -> None:
        self.cells: dict[tuple[str, str | None, str | None], list[Any]] = {}
        self.builds: dict[tuple[str, str | None, str | None, str | None], list[int]] = {}
        self.kev = frozenset(kev_cves() if kev is None else kev)

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

    def _add_build(
        self, dim: str, country: str | None, key: str | None, build: str | None,
        counts: tuple[int, int, int, int],
    ) -> None:  # fmt: skip
        cell = self.builds.setdefault((dim, country, key, build), [0, 0, 0, 0])
        for i, n in enumerate(counts):
            cell[i] += n

    def add(self, row: dict[str, Any]) -> None:
        """One enrichment row, as a dict of ENRICHMENT columns."""
        x = counts_as_on_prem(row)
        v = x and bool(row["vulnerable"])
        eol = x and bool(row["eol"])
        counts = (1, int(x), int(v), int(eol), 0, 0)
        country = row["country"]
        asn = None if row["asn"] is None else str(row["asn"])
        sector = row["sector"] or "unknown"
        self._add("country", country, country, None, counts)
        self._add("asn", country, asn, row["as_name"], counts)
        self._add("sector", country, sector, None, counts)
        self._add("organisation", country, row["organisation"], row["sector"], counts)
        if not x:
            return
        label = " ".join(p for p in (row["product"], row["cu"]) if p is not None)
        self._add(
            "version", country, row["build"] or HIDDEN_BUILD, label, (1, 1, int(v), int(eol), 0, 0)
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
        per_build = (1, int(v), int(not vulnerable.isdisjoint(self.kev)), int(eol))
        build = row["build"]
        self._add_build("country", country, country, build, per_build)
        self._add_build("asn", country, asn, build, per_build)
        self._add_build("sector", country, sector, build, per_build)
        self._add_build("organisation", country, row["organisation"], build, per_build)

    def rows(self, scan_id: str) -> list[RollupRow]:
        return [
            (scan_id, dim, country, key, *cell) for (dim, country, key), cell in self.cells.items()
        ]

    def build_rows(self, scan_id: str) -> list[BuildRow]:
        return [(scan_id, *key, *cell) for key, cell in self.builds.items()]


def _generation(store: Store, scan_id: str) -> int | None:
    value = store.scalar(
        "SELECT coalesce(enrich_generation, 0) FROM scans WHERE scan_id = ?", [scan_id]
    )
    return None if value is None else int(value)


def _counts_current(store: Store, scan_id: str, generation: int | None) -> bool:
    built = store.scalar("SELECT generation FROM rollup_state WHERE scan_id = ?", [scan_id])
    return built is not None and generation is not None and int(built) == generation


def _builds_current(store: Store, scan_id: str, generation: int | None, kev: str) -> bool:
    state = store.query(
        "SELECT generation, kev FROM rollup_builds_state WHERE scan_id = ?", [scan_id]
    )
    return (
        bool(state) and generation is not None and int(state[0][0]) == generation
        and state[0][1] == kev
    )  # fmt: skip


def is_current(store: Store, scan_id: str) -> bool:
    """Both parts of the scan's rollup were built from its current enrichment (the per-build
    part also from the KEV list this exwatch ships)."""
    generation = _generation(store, scan_id)
    return _counts_current(store, scan_id, generation) and _builds_current(
        store, scan_id, generation, kev_signature()
    )


def _sum_pieces(store: Store, table: str, columns: list[Column], select: str, scan_id: str) -> None:
    # Sum the pieces so that a scan enriched in many small steps keeps one row per cell.
    staging = f"{table}_sum"
    store.staging_table(staging, columns)
    store.execute(f"INSERT INTO {staging} {select}", [scan_id])
    store.execute(f"DELETE FROM {table} WHERE scan_id = ?", [scan_id])
    store.execute(f"INSERT INTO {table} SELECT * FROM {staging}")
    store.drop_staging(staging)


def add(store: Store, scan_id: str, acc: Accumulator, *, fresh: bool) -> None:
    """Fold newly enriched rows into the scan's rollup, inside the caller's transaction.

    `fresh`: the rollup was current before these rows (`is_current`), or the scan had no
    enrichment at all (then these rows are all of it).  Otherwise the rollup is left stale
    for a full build."""
    if not fresh:
        return
    store.bulk_insert("rollup", ROLLUP, acc.rows(scan_id))
    _sum_pieces(
        store, "rollup", ROLLUP,
        "SELECT scan_id, dim, country, key, min(label), sum(hosts), sum(exchange),"
        " sum(vulnerable), sum(eol), sum(patched), sum(undetermined)"
        " FROM rollup WHERE scan_id = ? GROUP BY scan_id, dim, country, key",
        scan_id,
    )  # fmt: skip
    store.bulk_insert("rollup_builds", ROLLUP_BUILDS, acc.build_rows(scan_id))
    _sum_pieces(
        store, "rollup_builds", ROLLUP_BUILDS,
        "SELECT scan_id, dim, country, key, build, sum(hosts), sum(vulnerable), sum(kev),"
        " sum(eol) FROM rollup_builds WHERE scan_id = ?"
        " GROUP BY scan_id, dim, country, key, build",
        scan_id,
    )  # fmt: skip
    generation = _generation(store, scan_id)
    _mark_counts(store, scan_id, generation)
    _mark_builds(store, scan_id, generation, kev_signature(acc.kev))


def _mark_counts(store: Store, scan_id: str, generation: int | None) -> None:
    store.execute("DELETE FROM rollup_state WHERE scan_id = ?", [scan_id])
    store.execute(
        "INSERT INTO rollup_state (scan_id, generation) VALUES (?, ?)",
        [scan_id, int(generation or 0)],
    )


def _mark_builds(store: Store, scan_id: str, generation: int | None, kev: str) -> None:
    store.execute("DELETE FROM rollup_builds_state WHERE scan_id = ?", [scan_id])
    store.execute(
        "INSERT INTO rollup_builds_state (scan_id, generation, kev) VALUES (?, ?, ?)",
        [scan_id, int(generation or 0), kev],
    )


def forget(store: Store, scan_id: str) -> None:
    """Drop the scan's rollup (its enrichment is being redone), in the caller's transaction."""
    for table in ("rollup", "rollup_state", "rollup_builds", "rollup_builds_state"):
        store.execute(f"DELETE FROM {table} WHERE scan_id = ?", [scan_id])


def ensure(store: Store, scan_id: str) -> None:
    """Build whichever part of the scan's rollup is stale: both after its enrichment changed,
    the per-build cells also after the shipped KEV list changed."""
    if store.read_only or is_current(store, scan_id):
        return
    kev = kev_cves()
    signature = kev_signature(kev)
    with store.transaction():
        store.lock(f"enrich:{scan_id}")
        # Another process may have built either part while we waited for the lock.
        generation = _generation(store, scan_id)
        if not _counts_current(store, scan_id, generation):
            rows = _compute(store, scan_id)
            store.execute("DELETE FROM rollup WHERE scan_id = ?", [scan_id])
            store.bulk_insert("rollup", ROLLUP, rows)
            _mark_counts(store, scan_id, generation)
        if not _builds_current(store, scan_id, generation, signature):
            cells = _compute_builds(store, scan_id, kev)
            store.execute("DELETE FROM rollup_builds WHERE scan_id = ?", [scan_id])
            store.bulk_insert("rollup_builds", ROLLUP_BUILDS, cells)
            _mark_builds(store, scan_id, generation, signature)


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


def build_cells(
    store: Store,
    scan_id: str,
    dim: str,
    country: str | None = None,
    keys: Iterable[Any] | None = None,
) -> dict[str | None, list[Cell]]:
    """Per key of a dimension (summed over countries, or of one country), its Exchange hosts
    as (build, hosts, vulnerable, kev, eol) cells.  `version` is keyed by build (HIDDEN_BUILD
    for hidden builds), keys as `merged` gives them; `keys` limits the answer to those."""
    wanted = None if keys is None else {None if k is None else str(k) for k in keys}
    by_build = dim == "version"
    sums: dict[tuple[str | None, str | None], list[int]] = {}
    for key, build, *counts in _build_rows(
        store, scan_id, "country" if by_build else dim, country, None if by_build else wanted
    ):
        if by_build:
            key = HIDDEN_BUILD if build is None else build
            if wanted is not None and key not in wanted:
                continue
        cell = sums.setdefault((key, build), [0, 0, 0, 0])
        for i, n in enumerate(counts):
            cell[i] += int(n or 0)
    out: dict[str | None, list[Cell]] = {}
    for (key, build), (hosts, vulnerable, kev, eol) in sums.items():
        out.setdefault(key, []).append((build, hosts, vulnerable, kev, eol))
    return out


def _build_rows(
    store: Store, scan_id: str, dim: str, country: str | None, keys: set[str | None] | None
) -> list[tuple[Any, ...]]:
    """(key, build, hosts, vulnerable, kev, eol) rows of one dimension, summed over countries
    unless one is given (the read-only path leaves the sums to the caller)."""
    if store.read_only:
        cached = _MEMORY_BUILDS.get((id(store), scan_id))
        if cached is None:
            cached = _MEMORY_BUILDS[(id(store), scan_id)] = _compute_builds(
                store, scan_id, kev_cves()
            )
        return [
            tuple(r[3:])
            for r in cached
            if r[1] == dim
            and (country is None or r[2] == country)
            and (keys is None or r[3] in keys)
        ]
    ensure(store, scan_id)
    sums = ", ".join(f"CAST(sum({c}) AS BIGINT)" for c in ("hosts", "vulnerable", "kev", "eol"))
    sql = f"SELECT key, build, {sums} FROM rollup_builds WHERE scan_id = ? AND dim = ?"
    args: list[Any] = [scan_id, dim]
    if country is not None:
        sql += " AND country = ?"
        args.append(country)
    if keys is not None:
        where, values = store.dialect.in_list("key", sorted(k for k in keys if k is not None))
        sql += f" AND ({where}{' OR key IS NULL' if None in keys else ''})"
        args.extend(values)
    return store.query(sql + " GROUP BY key, build", args)


__all__ = [
    "BUILD_DIMS",
    "BUILD_NOT_READ",
    "DIMS",
    "HIDDEN_BUILD",
    "Accumulator",
    "Cell",
    "add",
    "build_cells",
    "ensure",
    "forget",
    "is_current",
    "kev_signature",
    "merged",
    "rows",
]
