"""Change across scans: the trend per scan, each host's history, and the diff of two scans.

A host is a target address (ip, port).  A host is only *seen* in a scan where it answered
(enrichment rows are answering rows), so an absence is "not seen", never "patched".
States per sighting: vulnerable (on-prem Exchange with a vulnerable verdict), mitigated (no
vulnerable verdict, but a `mitigated` one: a mitigation seen on a vulnerable build, opt-in
checks), patched (on-prem Exchange, neither), other (answered, not on-prem Exchange).
Where the opt-in checks ran in both scans, the diff also shows the web-shell check's
changes: newly compromised, and no longer showing indicators (judged clean at the known
paths in B; `unknown` in B says nothing).
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, paths) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from exwatch.errors import UsageError
from exwatch.onprem import on_prem_sql
from exwatch.report import compromise, rollup
from exwatch.report.aggregate import country_code, pct, resolve_scan, scan_day
from exwatch.report.lag import DEFAULT_THRESHOLDS, Thresholds, build_lag, summarise
from exwatch.report.worldmap import country_name
from exwatch.store import Store

DiffBy = Literal["country", "asn", "sector", "organisation", "version", "total"]
DIFF_GROUPS: tuple[DiffBy, ...] = ("country", "asn", "sector", "organisation", "version", "total")
_DIFF_KEY = {
    "country": "country",
    "asn": "asn",
    "sector": "sector",
    "organisation": "organisation",
    "version": "build",
    "total": "'all'",
}


def shard_completeness(store: Store, scan_id: str) -> dict[str, Any]:
    """Which shards of a census are in the store, how many targets each recorded, and how
    many it was to scan (known for shards scanned into this store).  Reads the per-shard
    counters, never the results themselves."""
    parts = store.scan_parts(scan_id)
    of = max([int(p["shard_count"] or 1) for p in parts] or [1])
    seen = {str(p["part"]) for p in parts}
    done = sum(int(p["recorded"]) for p in parts)
    expected: int | None = None
    if len(parts) == of and all(p["targets"] is not None for p in parts):
        expected = sum(int(p["targets"]) for p in parts)
    return {
        "shards": f"{len(seen)}/{of}",
        "missing_shards": [f"{i}/{of}" for i in range(1, of + 1) if f"{i}/{of}" not in seen],
        "targets_done": done,
        "targets_expected": expected,
        "complete_pct": pct(done, expected) if expected else None,
        "parts": [
            {
                "part": p["part"],
                "status": p["status"],
                "targets": p["targets"],
                "recorded": int(p["recorded"]),
            }
            for p in sorted(parts, key=lambda p: int(str(p["part"]).split("/")[0]))
        ],
    }


def scan_trend(
    store: Store, *, country: str | None = None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> list[dict[str, Any]]:
    """Per scan, oldest first: hosts, Exchange, vulnerable, KEV and EOL counts, the patch lag
    of its Exchange hosts (as of each scan's day), and how complete the census is (shards
    present, targets recorded of those to scan)."""
    code = country_code(country)
    d = store.dialect
    out = []
    for scan_id, started, status in store.query(
        f"SELECT s.scan_id, {d.iso('s.started_at')}, s.status FROM scans s"
        " ORDER BY s.started_at NULLS LAST, s.scan_id"
    ):
        rows = rollup.rows(store, str(scan_id), "country", code)
        hosts = sum(int(r[3]) for r in rows)
        exchange = sum(int(r[4]) for r in rows)
        vulnerable = sum(int(r[5]) for r in rows)
        eol = sum(int(r[6]) for r in rows)
        cells = [c for cs in rollup.build_cells(store, str(scan_id), "country", code).values()
                 for c in cs]  # fmt: skip
        lag = summarise(((c[0], c[1]) for c in cells), scan_day(store, str(scan_id)), thresholds)
        kev = sum(c[3] for c in cells)
        shards = shard_completeness(store, str(scan_id))
        out.append(
            {
                "scan_id": scan_id,
                "started_at": started,
                "status": status,
                "hosts": hosts,
                "exchange": exchange,
                "vulnerable": vulnerable,
                "eol": eol,
                "vulnerable_pct": pct(vulnerable, exchange),
                "kev": kev,
                "kev_pct": pct(kev, exchange),
                **lag.to_json(),
                **shards,
            }
        )
    return out


def host_history(
    store: Store,
    *,
    country: str | None = None,
    vulnerable_days: int | None = None,
    only_exchange: bool = True,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Per host across all scans: first/last seen, transitions, current vulnerable streak.

    `vulnerable_since` is the first sighting of the current unbroken run of vulnerable
    sightings; `days_vulnerable` counts from it to the last sighting.  With `vulnerable_days`
    only hosts still vulnerable after at least that many days are listed.  `months_behind`
    is the patch lag of the last build seen, as of the last sighting (lag.py).
    """
    code = country_code(country)
    d = store.dialect
    args: list[Any] = []
    where = ""
    if code:
        where, args = " AND country = ?", [code]
    days = d.days_between("st.since", "p.last_seen")
    sql = f"""
    WITH h AS (
        SELECT ip, port, ip_sort, ts, country, organisation, build,
               {on_prem_sql()} AS x,
               {on_prem_sql()} AND coalesce(vulnerable, FALSE) AS v
        FROM enrichment WHERE TRUE{where}
    ), s AS (
        SELECT h.*, lag(v) OVER w AS prev_v, lag(x) OVER w AS prev_x,
               row_number() OVER (PARTITION BY ip, port ORDER BY ts DESC) AS rn
        FROM h WINDOW w AS (PARTITION BY ip, port ORDER BY ts)
    ), runs AS (
        SELECT s.*, sum(CASE WHEN v AND coalesce(prev_v, FALSE) THEN 0 ELSE 1 END)
                  OVER (PARTITION BY ip, port ORDER BY ts) AS run
        FROM s
    ), per_host AS (
        SELECT ip, port, min(ip_sort) AS ip_sort, min(ts) AS first_seen, max(ts) AS last_seen,
               count(*) AS sightings,
               min(ts) FILTER (WHERE x) AS first_exchange,
               min(ts) FILTER (WHERE v) AS first_vulnerable,
               max(ts) FILTER (WHERE v) AS last_vulnerable,
               bool_or(v AND rn = 1) AS vulnerable_now, bool_or(x AND rn = 1) AS exchange_now,
               max(build) FILTER (WHERE rn = 1) AS build,
               max(country) FILTER (WHERE rn = 1) AS country,
               max(organisation) FILTER (WHERE rn = 1) AS organisation,
               max(run) FILTER (WHERE rn = 1) AS last_run,
               count(*) FILTER (WHERE prev_v AND x AND NOT v) AS patched_transitions,
               count(*) FILTER (WHERE v AND prev_v = FALSE AND prev_x) AS regressions,
               bool_or(x) AS ever_exchange
        FROM runs GROUP BY ip, port
    ), streak AS (
        SELECT ip, port, run, min(ts) AS since FROM runs WHERE v GROUP BY ip, port, run
    )
    SELECT p.ip, p.port, p.country, p.organisation, p.build,
           {d.iso("p.first_seen")} AS first_seen, {d.iso("p.last_seen")} AS last_seen,
           p.sightings, {d.iso("p.first_exchange")} AS first_exchange,
           {d.iso("p.first_vulnerable")} AS first_vulnerable,
           {d.iso("p.last_vulnerable")} AS last_vulnerable,
           p.vulnerable_now, p.exchange_now, p.patched_transitions, p.regressions,
           CASE WHEN p.vulnerable_now THEN {d.iso("st.since")} END AS vulnerable_since,
           CASE WHEN p.vulnerable_now THEN {days} END AS days_vulnerable
    FROM per_host p LEFT JOIN streak st
      ON st.ip = p.ip AND st.port = p.port AND st.run = p.last_run
    WHERE {"p.ever_exchange" if only_exchange else "TRUE"}
    """
    if vulnerable_days is not None:
        sql += f" AND p.vulnerable_now AND {days} >= ?"
        args.append(int(vulnerable_days))
    sql += " ORDER BY days_vulnerable DESC NULLS LAST, p.ip_sort, p.port"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    out = []
    for item in store.dicts(sql, args):
        for key in ("sightings", "patched_transitions", "regressions"):
            item[key] = int(item[key])
        if item["days_vulnerable"] is not None:
            item["days_vulnerable"] = int(item["days_vulnerable"])
        lag = build_lag(item["build"], date.fromisoformat(str(item["last_seen"])[:10]))
        item["months_behind"] = None if lag is None else lag.months
        out.append(item)
    return out


@dataclass(frozen=True, slots=True)
class DiffRow:
    key: str | int | None
    name: str | None
    vulnerable_a: int
    vulnerable_b: int
    patched: int  # vulnerable in A, Exchange without vulnerable or mitigated verdict in B
    mitigated: int  # vulnerable in A, in B no vulnerable verdict but a mitigated one
    still_vulnerable: int
    not_seen: int  # vulnerable in A, did not answer in B
    no_longer_exchange: int  # vulnerable in A, answered in B but not as Exchange
    newly_vulnerable: int  # vulnerable in B, not vulnerable (or not seen) in A
    newly_compromised: int  # compromised in B, not in A (opt-in checks)
    no_longer_compromised: int  # compromised in A, judged clean at the known paths in B

    @property
    def patch_rate(self) -> float | None:
        """Share of A's vulnerable hosts seen again in B that are now patched (a mitigated
        host is not patched)."""
        return pct(self.patched, self.patched + self.mitigated + self.still_vulnerable)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "vulnerable_a": self.vulnerable_a,
            "vulnerable_b": self.vulnerable_b,
            "patched": self.patched,
            "mitigated": self.mitigated,
            "still_vulnerable": self.still_vulnerable,
            "not_seen": self.not_seen,
            "no_longer_exchange": self.no_longer_exchange,
            "newly_vulnerable": self.newly_vulnerable,
            "newly_compromised": self.newly_compromised,
            "no_longer_compromised": self.no_longer_compromised,
            "patch_rate": self.patch_rate,
        }


def side_sql(store: Store, key: str = "country") -> str:
    """One scan's hosts for a diff: group key k, on-prem Exchange x, vulnerable v,
    mitigated m, compromised c, and judged (the web-shell check reached a verdict)."""
    mitigated = store.dialect.array_len("h.mitigated_cves")
    return (
        "SELECT e.ip, e.port, min(e.ip_sort) AS ip_sort, CAST(min(" + key + ") AS VARCHAR) AS k,"
        " min(e.organisation) AS organisation,"
        f" bool_or({on_prem_sql('e')}) AS x,"
        f" bool_or({on_prem_sql('e')} AND coalesce(e.vulnerable, FALSE)) AS v,"
        f" bool_or(coalesce({mitigated} > 0, FALSE)) AS m,"
        " bool_or(coalesce(h.compromise = 'compromised', FALSE)) AS c,"
        " bool_or(coalesce(h.compromise IN ('compromised', 'clean-at-known-paths'), FALSE))"
        " AS judged"
        f" FROM enrichment e{compromise.CHECKS_JOIN} WHERE e.scan_id = ? GROUP BY e.ip, e.port"
    )


# A host's state in one side of a diff ({t}: a or b).
STATE = (
    "CASE WHEN {t}.ip IS NULL THEN 'not-seen' WHEN {t}.v THEN 'vulnerable'"
    " WHEN {t}.x AND {t}.m THEN 'mitigated' WHEN {t}.x THEN 'patched' ELSE 'other' END"
)
# How the web-shell check's state changed from a to b, or NULL.
COMPROMISE_CHANGE = (
    "CASE WHEN b.c AND NOT coalesce(a.c, FALSE) THEN 'newly compromised'"
    " WHEN a.c AND coalesce(b.judged, FALSE) AND NOT b.c THEN 'no longer showing indicators'"
    " END"
)


def ensure_checks(store: Store, *scan_ids: str) -> None:
    """The scans' host_checks rows, built if needed (a diff reads them for both sides)."""
    for scan_id in scan_ids:
        compromise.ensure(store, scan_id)


# A host's group in the diff: B's, unless B does not know it ("unknown" sector, no
# organisation) and A does - a lookup that failed in B must not move a host out of its group.
_GROUP_OF = "CASE WHEN b.k IS NULL OR b.k = 'unknown' THEN coalesce(a.k, b.k) ELSE b.k END"


def diff_scans(store: Store, scan_a: str, scan_b: str, by: DiffBy = "country") -> list[DiffRow]:
    """Per group: what became of scan A's vulnerable hosts in scan B, and what is new."""
    scan_a = resolve_scan(store, scan_a)
    scan_b = resolve_scan(store, scan_b)
    if by not in _DIFF_KEY:
        raise UsageError(f"cannot group a diff by {by!r}; one of {', '.join(DIFF_GROUPS)}")
    key = _DIFF_KEY[by]
    ensure_checks(store, scan_a, scan_b)
    side = side_sql(store, key)
    rows = store.query(
        f"WITH a AS ({side}), b AS ({side}), g AS ("
        f" SELECT {_GROUP_OF} AS key,"
        " count(*) FILTER (WHERE a.v) AS vulnerable_a,"
        " count(*) FILTER (WHERE b.v) AS vulnerable_b,"
        " count(*) FILTER (WHERE a.v AND b.x AND NOT b.v AND NOT b.m) AS patched,"
        " count(*) FILTER (WHERE a.v AND b.x AND NOT b.v AND b.m) AS mitigated,"
        " count(*) FILTER (WHERE a.v AND b.v) AS still_vulnerable,"
        " count(*) FILTER (WHERE a.v AND b.ip IS NULL) AS not_seen,"
        " count(*) FILTER (WHERE a.v AND b.ip IS NOT NULL AND NOT b.x) AS no_longer_exchange,"
        " count(*) FILTER (WHERE b.v AND (a.ip IS NULL OR NOT a.v)) AS newly_vulnerable,"
        f" count(*) FILTER (WHERE {COMPROMISE_CHANGE} = 'newly compromised')"
        " AS newly_compromised,"
        f" count(*) FILTER (WHERE {COMPROMISE_CHANGE} = 'no longer showing indicators')"
        " AS no_longer_compromised"
        " FROM a FULL OUTER JOIN b ON a.ip = b.ip AND a.port = b.port GROUP BY 1)"
        " SELECT * FROM g"
        " WHERE vulnerable_a + vulnerable_b + newly_compromised + no_longer_compromised > 0"
        " ORDER BY vulnerable_a DESC, vulnerable_b DESC, key NULLS LAST",
        [scan_a, scan_b],
    )
    out = []
    for k, *counts in rows:
        value: str | int | None = k
        name = None
        if by == "country":
            name = country_name(k) if k else "unknown"
        elif by == "asn" and k is not None:
            value = int(k)
        elif by == "version" and k is None:
            name = rollup.BUILD_NOT_READ
        out.append(DiffRow(value, name, *(int(c) for c in counts)))
    return out


def host_changes(
    store: Store, scan_a: str, scan_b: str, *, limit: int = 10_000
) -> list[dict[str, Any]]:
    """Hosts whose state differs between A and B (vulnerable/mitigated/patched/other/
    not-seen), or whose web-shell check's state changed (`compromise`)."""
    scan_a, scan_b = resolve_scan(store, scan_a), resolve_scan(store, scan_b)
    ensure_checks(store, scan_a, scan_b)
    side = side_sql(store)
    rows = store.query(
        f"WITH a AS ({side}), b AS ({side}), c AS ("
        " SELECT coalesce(a.ip, b.ip) AS ip, coalesce(a.port, b.port) AS port,"
        " coalesce(a.ip_sort, b.ip_sort) AS ip_sort,"
        f" {_GROUP_OF} AS country, {STATE.format(t='a')} AS before,"
        f" {STATE.format(t='b')} AS after, {COMPROMISE_CHANGE} AS compromise"
        " FROM a FULL OUTER JOIN b ON a.ip = b.ip AND a.port = b.port"
        " WHERE (a.v OR b.v OR a.c OR b.c))"
        " SELECT ip, port, country, before, after, compromise FROM c"
        " WHERE before <> after OR compromise IS NOT NULL"
        f" ORDER BY before, after, ip_sort, port LIMIT {int(limit)}",
        [scan_a, scan_b],
    )
    keys = ("ip", "port", "country", "before", "after", "compromise")
    return [dict(zip(keys, row, strict=True)) for row in rows]


__all__ = [
    "COMPROMISE_CHANGE",
    "DIFF_GROUPS",
    "STATE",
    "DiffBy",
    "DiffRow",
    "diff_scans",
    "ensure_checks",
    "host_changes",
    "host_history",
    "scan_trend",
    "shard_completeness",
    "side_sql",
]
