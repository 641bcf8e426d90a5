"""Change across scans: the trend per scan, each host's history, and the diff of two scans.

A host is a target address (ip, port).  A host is only *seen* in a scan where it answered
(enrichment rows are answering rows), so an absence is "not seen", never "patched".
States per sighting: vulnerable (Exchange with a vulnerable verdict), patched (Exchange, no
vulnerable verdict), other (answered, not Exchange).
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, paths) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import duckdb

from exwatch.errors import UsageError
from exwatch.report.aggregate import pct, resolve_scan
from exwatch.report.worldmap import country_name

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


def _where_country(country: str | None) -> tuple[str, list[Any]]:
    if country is None:
        return "", []
    return " AND country = ?", [country.strip().upper()]


def scan_trend(
    con: duckdb.DuckDBPyConnection, *, country: str | None = None
) -> list[dict[str, Any]]:
    """Per scan, oldest first: hosts, Exchange, vulnerable and EOL counts."""
    where, args = _where_country(country)
    rows = con.execute(
        "SELECT s.scan_id, strftime(coalesce(s.started_at, min(e.ts)), '%Y-%m-%dT%H:%M:%SZ')"
        " AS started,"
        " count(e.ip) AS hosts,"
        " count(*) FILTER (WHERE e.is_exchange) AS exchange,"
        " count(*) FILTER (WHERE e.is_exchange AND e.vulnerable) AS vulnerable,"
        " count(*) FILTER (WHERE e.is_exchange AND e.eol) AS eol"
        " FROM scans s LEFT JOIN enrichment e ON e.scan_id = s.scan_id"
        f"{where.replace('country', 'e.country')}"
        " GROUP BY s.scan_id, s.started_at ORDER BY s.started_at NULLS LAST, s.scan_id",
        args,
    ).fetchall()
    return [
        {
            "scan_id": scan_id,
            "started_at": _iso(started),
            "hosts": int(hosts),
            "exchange": int(exchange),
            "vulnerable": int(vulnerable),
            "eol": int(eol),
            "vulnerable_pct": pct(int(vulnerable), int(exchange)),
        }
        for scan_id, started, hosts, exchange, vulnerable, eol in rows
    ]


def host_history(
    con: duckdb.DuckDBPyConnection,
    *,
    country: str | None = None,
    vulnerable_days: int | None = None,
    only_exchange: bool = True,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Per host across all scans: first/last seen, transitions, current vulnerable streak.

    `vulnerable_since` is the first sighting of the current unbroken run of vulnerable
    sightings; `days_vulnerable` counts from it to the last sighting.  With `vulnerable_days`
    only hosts still vulnerable after at least that many days are listed.
    """
    where, args = _where_country(country)
    sql = f"""
    WITH h AS (
        SELECT ip, port, ts::TIMESTAMP AS ts, scan_id, country, organisation, build,
               coalesce(is_exchange, false) AS x,
               coalesce(is_exchange AND vulnerable, false) AS v
        FROM enrichment WHERE true{where}
    ), s AS (
        SELECT *, lag(v) OVER w AS prev_v, lag(x) OVER w AS prev_x FROM h
        WINDOW w AS (PARTITION BY ip, port ORDER BY ts)
    ), runs AS (
        SELECT *, sum(CASE WHEN v AND coalesce(prev_v, false) THEN 0 ELSE 1 END)
                  OVER (PARTITION BY ip, port ORDER BY ts) AS run
        FROM s
    ), per_host AS (
        SELECT ip, port, min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS sightings,
               min(ts) FILTER (WHERE x) AS first_exchange,
               min(ts) FILTER (WHERE v) AS first_vulnerable,
               max(ts) FILTER (WHERE v) AS last_vulnerable,
               arg_max(v, ts) AS vulnerable_now, arg_max(x, ts) AS exchange_now,
               arg_max(build, ts) AS build, arg_max(country, ts) AS country,
               arg_max(organisation, ts) AS organisation, arg_max(run, ts) AS last_run,
               count(*) FILTER (WHERE prev_v AND x AND NOT v) AS patched_transitions,
               count(*) FILTER (WHERE v AND prev_v = false AND prev_x) AS regressions,
               bool_or(x) AS ever_exchange
        FROM runs GROUP BY ip, port
    ), streak AS (
        SELECT ip, port, run, min(ts) AS since FROM runs WHERE v GROUP BY ip, port, run
    )
    SELECT p.*, CASE WHEN p.vulnerable_now THEN st.since END AS vulnerable_since,
           CASE WHEN p.vulnerable_now THEN date_diff('day', st.since, p.last_seen) END
               AS days_vulnerable
    FROM per_host p LEFT JOIN streak st
      ON st.ip = p.ip AND st.port = p.port AND st.run = p.last_run
    WHERE {"p.ever_exchange" if only_exchange else "true"}
    """
    if vulnerable_days is not None:
        sql += " AND p.vulnerable_now AND date_diff('day', st.since, p.last_seen) >= ?"
        args.append(int(vulnerable_days))
    sql += " ORDER BY days_vulnerable DESC NULLS LAST, p.ip, p.port"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cur = con.execute(sql, args)
    names = [d[0] for d in cur.description or ()]
    out = []
    for row in cur.fetchall():
        item = dict(zip(names, row, strict=True))
        item.pop("last_run", None)
        item.pop("ever_exchange", None)
        for key in (
            "first_seen",
            "last_seen",
            "first_exchange",
            "first_vulnerable",
            "last_vulnerable",
            "vulnerable_since",
        ):
            item[key] = _iso(item[key])
        for key in ("sightings", "patched_transitions", "regressions"):
            item[key] = int(item[key])
        out.append(item)
    return out


@dataclass(frozen=True, slots=True)
class DiffRow:
    key: str | int | None
    name: str | None
    vulnerable_a: int
    vulnerable_b: int
    patched: int  # vulnerable in A, Exchange without vulnerable verdict in B
    still_vulnerable: int
    not_seen: int  # vulnerable in A, did not answer in B
    no_longer_exchange: int  # vulnerable in A, answered in B but not as Exchange
    newly_vulnerable: int  # vulnerable in B, not vulnerable (or not seen) in A

    @property
    def patch_rate(self) -> float | None:
        """Share of A's vulnerable hosts seen again in B that are now patched."""
        return pct(self.patched, self.patched + self.still_vulnerable)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "vulnerable_a": self.vulnerable_a,
            "vulnerable_b": self.vulnerable_b,
            "patched": self.patched,
            "still_vulnerable": self.still_vulnerable,
            "not_seen": self.not_seen,
            "no_longer_exchange": self.no_longer_exchange,
            "newly_vulnerable": self.newly_vulnerable,
            "patch_rate": self.patch_rate,
        }


def _side(scan_param: int, key: str) -> str:
    return (
        f"SELECT ip, port, any_value({key}) AS k, bool_or(coalesce(is_exchange, false)) AS x,"
        " bool_or(coalesce(is_exchange AND vulnerable, false)) AS v"
        f" FROM enrichment WHERE scan_id = ${scan_param} GROUP BY ip, port"
    )


def diff_scans(
    con: duckdb.DuckDBPyConnection, scan_a: str, scan_b: str, by: DiffBy = "country"
) -> list[DiffRow]:
    """Per group: what became of scan A's vulnerable hosts in scan B, and what is new."""
    scan_a = resolve_scan(con, scan_a)
    scan_b = resolve_scan(con, scan_b)
    if by not in _DIFF_KEY:
        raise UsageError(f"cannot group a diff by {by!r}; one of {', '.join(DIFF_GROUPS)}")
    key = _DIFF_KEY[by]
    rows = con.execute(
        f"WITH a AS ({_side(1, key)}), b AS ({_side(2, key)})"
        " SELECT coalesce(b.k, a.k) AS key,"
        " count(*) FILTER (WHERE a.v) AS vulnerable_a,"
        " count(*) FILTER (WHERE b.v) AS vulnerable_b,"
        " count(*) FILTER (WHERE a.v AND b.x AND NOT b.v) AS patched,"
        " count(*) FILTER (WHERE a.v AND b.v) AS still_vulnerable,"
        " count(*) FILTER (WHERE a.v AND b.ip IS NULL) AS not_seen,"
        " count(*) FILTER (WHERE a.v AND b.ip IS NOT NULL AND NOT b.x) AS no_longer_exchange,"
        " count(*) FILTER (WHERE b.v AND (a.ip IS NULL OR NOT a.v)) AS newly_vulnerable"
        " FROM a FULL OUTER JOIN b ON a.ip = b.ip AND a.port = b.port"
        " GROUP BY 1 HAVING vulnerable_a + vulnerable_b > 0"
        " ORDER BY vulnerable_a DESC, vulnerable_b DESC, 1 NULLS LAST",
        [scan_a, scan_b],
    ).fetchall()
    out = []
    for k, *counts in rows:
        name = (country_name(k) if k else "unknown") if by == "country" else None
        out.append(DiffRow(k, name, *(int(c) for c in counts)))
    return out


def host_changes(
    con: duckdb.DuckDBPyConnection, scan_a: str, scan_b: str, *, limit: int = 10_000
) -> list[dict[str, Any]]:
    """Hosts whose state differs between A and B (vulnerable/patched/other/not-seen)."""
    state = (
        "CASE WHEN {t}.ip IS NULL THEN 'not-seen' WHEN {t}.v THEN 'vulnerable'"
        " WHEN {t}.x THEN 'patched' ELSE 'other' END"
    )
    rows = con.execute(
        f"WITH a AS ({_side(1, 'country')}), b AS ({_side(2, 'country')})"
        " SELECT coalesce(a.ip, b.ip) AS ip, coalesce(a.port, b.port) AS port,"
        f" coalesce(b.k, a.k) AS country, {state.format(t='a')} AS before,"
        f" {state.format(t='b')} AS after"
        " FROM a FULL OUTER JOIN b ON a.ip = b.ip AND a.port = b.port"
        " WHERE (a.v OR b.v) AND before <> after ORDER BY before, after, ip, port"
        f" LIMIT {int(limit)}",
        [resolve_scan(con, scan_a), resolve_scan(con, scan_b)],
    ).fetchall()
    keys = ("ip", "port", "country", "before", "after")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        # Naive values are UTC: the store sets the session time zone to UTC.
        return value.replace(tzinfo=None).isoformat() + "Z"
    return str(value)


__all__ = [
    "DIFF_GROUPS",
    "DiffBy",
    "DiffRow",
    "diff_scans",
    "host_changes",
    "host_history",
    "scan_trend",
]
