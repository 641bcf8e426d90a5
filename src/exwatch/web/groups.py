"""The drill-down counts: country > AS or sector > organisation, per scan, kept in `web_groups`.

Each level carries what a CERT analyst sorts by: answering hosts, Exchange, vulnerable,
KEV (a vulnerable verdict for a CVE in CISA's catalog), end of life, patch lag (hosts with
a placed build, their summed days behind, how many are behind their CU's newest update),
and compromise counts where hosts were checked (the opt-in checks' `host_checks` rows,
report/compromise.py).  One GROUPING SETS pass over the scan's
enrichment builds every level (seconds at ten million rows), the first time a page needs
it after the scan's enrichment changed; pages then read a few thousand rows.  A read-only
store gets the same rows computed in memory, once per server process.
"""

# SQL here is assembled from fixed column names of this module; values are bound parameters.

from __future__ import annotations

from typing import Any

from exwatch.onprem import on_prem_sql
from exwatch.report import compromise
from exwatch.report.compromise import CHECKS_JOIN
from exwatch.store import Store
from exwatch.store.schema import WEB_GROUPS, WEB_GROUPS_COLUMNS
from exwatch.web import derived
from exwatch.web.facts import kev_list, lag_values

LEVELS = ("country", "asn", "sector", "asn_org", "sector_org")
COUNTS = (
    "hosts", "exchange", "vulnerable", "kev", "eol", "lag_hosts", "lag_days", "behind",
    "checked", "compromised",
)  # fmt: skip

_GROUPS = """
SELECT
    CASE WHEN GROUPING(organisation) = 0 AND GROUPING(asn) = 0 THEN 'asn_org'
         WHEN GROUPING(organisation) = 0 THEN 'sector_org'
         WHEN GROUPING(asn) = 0 THEN 'asn'
         WHEN GROUPING(sector) = 0 THEN 'sector' ELSE 'country' END AS level,
    country,
    CASE WHEN GROUPING(asn) = 0 THEN asn END AS asn,
    CASE WHEN GROUPING(sector) = 0 THEN sector END AS sector,
    CASE WHEN GROUPING(organisation) = 0 THEN organisation END AS organisation,
    CASE WHEN GROUPING(organisation) = 0 THEN min(sector)
         WHEN GROUPING(asn) = 0 THEN min(as_name) END AS label,
    count(*) AS hosts,
    count(*) FILTER (WHERE x) AS exchange,
    count(*) FILTER (WHERE x AND v) AS vulnerable,
    count(*) FILTER (WHERE x AND v AND kev) AS kev,
    count(*) FILTER (WHERE x AND eol) AS eol,
    count(*) FILTER (WHERE x AND days IS NOT NULL) AS lag_hosts,
    coalesce(sum(days) FILTER (WHERE x), 0) AS lag_days,
    count(*) FILTER (WHERE x AND sus > 0) AS behind,
    count(*) FILTER (WHERE x AND checked) AS checked,
    count(*) FILTER (WHERE x AND compromised) AS compromised
FROM (
    SELECT e.country, e.asn, e.as_name, coalesce(e.sector, 'unknown') AS sector, e.organisation,
           {on_prem} AS x, coalesce(e.vulnerable, FALSE) AS v,
           coalesce(e.eol, FALSE) AS eol, coalesce({kev}, FALSE) AS kev,
           lag.days, lag.sus, {checked} AS checked, {compromised} AS compromised
    FROM enrichment e LEFT JOIN {lag} ON lag.build = e.build{checks}
    WHERE e.scan_id = ?
) t
GROUP BY GROUPING SETS ((country), (country, asn), (country, sector),
                        (country, asn, organisation), (country, sector, organisation))
"""

_MEMORY: dict[tuple[str, str, str], list[tuple[Any, ...]]] = {}


def has_checks(store: Store, scan_id: str) -> bool:
    """Whether the opt-in checks (`scan --check`) ran on any host of the scan.

    Their results are the `host_checks` rows that report/compromise.py builds from the
    results' records (brought up to date here); pages show compromise columns only then."""
    compromise.ensure(store, scan_id)
    if not store.has_table("host_checks"):
        return False
    found = store.query("SELECT 1 FROM host_checks WHERE scan_id = ? LIMIT 1", [scan_id])
    return bool(found)


def stamp_of(store: Store, scan_id: str) -> str:
    """What the scan's groups depend on: its enrichment generation and row count."""
    row = store.query(
        "SELECT coalesce(enrich_generation, 0), coalesce(enriched, 0) FROM scans WHERE scan_id = ?",
        [scan_id],
    )
    # ":c": the counts include the checks' rows (groups built before they did are rebuilt).
    return "missing" if not row else f"{int(row[0][0])}:{int(row[0][1])}:c"


def _compute(store: Store, scan_id: str) -> list[tuple[Any, ...]]:
    d = store.dialect
    builds = [
        str(r[0])
        for r in store.query(
            "SELECT DISTINCT build FROM enrichment WHERE scan_id = ? AND build IS NOT NULL",
            [scan_id],
        )
    ]
    lag, lag_params = lag_values(builds)
    checked = has_checks(store, scan_id)
    sql = _GROUPS.format(
        kev=d.array_overlaps("e.vulnerable_cves"),
        on_prem=on_prem_sql("e"),
        lag=lag,
        checks=CHECKS_JOIN if checked else "",
        checked="(h.ip IS NOT NULL)" if checked else "FALSE",
        compromised="coalesce(h.compromise = 'compromised', FALSE)" if checked else "FALSE",
    )
    with store.transaction():
        store.tune_for_aggregation()
        rows = store.query(sql, [kev_list(), *lag_params, scan_id])
    return [(scan_id, *row) for row in rows]


def ensure(store: Store, scan_id: str) -> None:
    """Build the scan's groups if its enrichment changed since they were built."""
    if store.read_only:
        return

    def fill() -> None:
        store.bulk_insert("web_groups", WEB_GROUPS, _compute(store, scan_id))
        if store.dialect.name == "postgresql":
            # Fresh statistics, or the planner takes a scan's hundred thousand organisation
            # rows for a handful and reads them all instead of the search's trigram index.
            store.execute("ANALYZE web_groups")

    derived.rebuild(store, "web_groups", scan_id, stamp_of(store, scan_id), fill)


def base_sql(store: Store, scan_id: str) -> tuple[str, list[Any]]:
    """A relation of the scan's group rows (columns WEB_GROUPS) to select from."""
    if store.read_only:
        key = (store.location, scan_id, stamp_of(store, scan_id))
        rows = _MEMORY.get(key)
        if rows is None:
            rows = _MEMORY[key] = _compute(store, scan_id)
        if not rows:
            return _empty(), []
        one = (
            "("
            + ", ".join(f"CAST(? AS {store.dialect.type(kind)})" for _, kind in WEB_GROUPS)
            + ")"
        )
        names = ", ".join(WEB_GROUPS_COLUMNS)
        return (
            f"(VALUES {', '.join([one] * len(rows))}) AS g({names})",
            [v for row in rows for v in row],
        )
    ensure(store, scan_id)
    return "web_groups g", []


def _empty() -> str:
    return "(SELECT " + ", ".join(f"NULL AS {c}" for c in WEB_GROUPS_COLUMNS) + " WHERE FALSE) g"


__all__ = ["CHECKS_JOIN", "COUNTS", "LEVELS", "base_sql", "ensure", "has_checks", "stamp_of"]
