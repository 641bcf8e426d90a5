"""Per-group counts for one scan: country, AS, sector, organisation, version, CVE.

Units: a *host* is one answering target address (ip:port, one result row with status
`success`); `exchange` are hosts identified as Exchange; `vulnerable` Exchange hosts with at
least one `vulnerable` verdict; `eol` Exchange hosts on an end-of-life product.  Percentages:
exchange of hosts, vulnerable and eol of Exchange hosts.  All counts read the `enrichment`
table (see enrichment.py), which holds the verdict columns beside the country.
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, paths) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb

from exwatch.errors import StoreError, UsageError
from exwatch.report.worldmap import country_name

GroupBy = Literal["country", "asn", "sector", "organisation", "version", "cve"]
GROUPS: tuple[GroupBy, ...] = ("country", "asn", "sector", "organisation", "version", "cve")

# key expression, label expression, rows restricted to Exchange hosts?
_GROUP_SQL: dict[str, tuple[str, str]] = {
    "country": ("country", "country"),
    "asn": ("asn", "any_value(as_name)"),
    "sector": ("coalesce(sector, 'unknown')", "NULL"),
    "organisation": ("organisation", "any_value(sector)"),
    "version": ("build", "any_value(concat_ws(' ', product, cu))"),
}


@dataclass(frozen=True, slots=True)
class GroupRow:
    key: str | int | None
    name: str | None
    hosts: int
    exchange: int
    vulnerable: int
    eol: int
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def exchange_pct(self) -> float | None:
        return pct(self.exchange, self.hosts)

    @property
    def vulnerable_pct(self) -> float | None:
        return pct(self.vulnerable, self.exchange)

    @property
    def eol_pct(self) -> float | None:
        return pct(self.eol, self.exchange)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "hosts": self.hosts,
            "exchange": self.exchange,
            "vulnerable": self.vulnerable,
            "eol": self.eol,
            "exchange_pct": self.exchange_pct,
            "vulnerable_pct": self.vulnerable_pct,
            "eol_pct": self.eol_pct,
            **self.extra,
        }


def pct(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(100.0 * part / whole, 1)


def scan_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """All scans, oldest first (by start, then first result)."""
    rows = con.execute(
        "SELECT scan_id FROM scans ORDER BY started_at NULLS LAST, scan_id"
    ).fetchall()
    return [str(r[0]) for r in rows]


def resolve_scan(con: duckdb.DuckDBPyConnection, scan_id: str | None) -> str:
    """The given scan (checked) or the latest one."""
    if scan_id is not None:
        row = con.execute("SELECT 1 FROM scans WHERE scan_id = ?", [scan_id]).fetchone()
        if row is None:
            known = ", ".join(scan_ids(con)[-5:]) or "none"
            raise UsageError(f"no scan {scan_id!r} in the store (latest: {known})")
        return scan_id
    ids = scan_ids(con)
    if not ids:
        raise UsageError("the store holds no scans yet; run `exwatch scan` or `exwatch ingest`")
    return ids[-1]


def scan_info(con: duckdb.DuckDBPyConnection, scan_id: str) -> dict[str, Any]:
    row = con.execute(
        "SELECT s.scan_id, s.name, s.origin, s.status,"
        " strftime(coalesce(s.started_at, (SELECT min(ts) FROM results"
        " WHERE scan_id = s.scan_id)), '%Y-%m-%dT%H:%M:%SZ'),"
        " strftime(s.finished_at, '%Y-%m-%dT%H:%M:%SZ') FROM scans s WHERE s.scan_id = ?",
        [scan_id],
    ).fetchone()
    if row is None:
        raise StoreError(f"no scan {scan_id}")
    return dict(
        zip(("scan_id", "name", "origin", "status", "started_at", "finished_at"), row, strict=True)
    )


def _country_filter(country: str | None, column: str = "country") -> tuple[str, list[Any]]:
    if country is None:
        return "", []
    code = country.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise UsageError(f"--country takes an ISO 3166-1 alpha-2 code such as BE, not {country!r}")
    return f" AND {column} = ?", [code]


def group_counts(
    con: duckdb.DuckDBPyConnection,
    scan_id: str,
    by: GroupBy,
    *,
    country: str | None = None,
    limit: int | None = None,
) -> list[GroupRow]:
    """Counts per group for one scan, most vulnerable first."""
    where, args = _country_filter(country)
    if by == "cve":
        return _cve_counts(con, scan_id, where, args, limit)
    if by not in _GROUP_SQL:
        raise UsageError(f"cannot group by {by!r}; one of {', '.join(GROUPS)}")
    key, label = _GROUP_SQL[by]
    only_exchange = " AND is_exchange" if by == "version" else ""
    sql = (
        f"SELECT {key} AS key, {label} AS label, count(*) AS hosts,"
        " count(*) FILTER (WHERE is_exchange) AS exchange,"
        " count(*) FILTER (WHERE is_exchange AND vulnerable) AS vulnerable,"
        " count(*) FILTER (WHERE is_exchange AND eol) AS eol"
        f" FROM enrichment WHERE scan_id = ?{where}{only_exchange}"
        " GROUP BY 1 ORDER BY vulnerable DESC, exchange DESC, hosts DESC, key NULLS LAST"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = con.execute(sql, [scan_id, *args]).fetchall()
    out = []
    for k, name, hosts, exchange, vulnerable, eol in rows:
        if by == "country":
            name = country_name(k) if k else "unknown"
        out.append(GroupRow(k, name, int(hosts), int(exchange), int(vulnerable), int(eol)))
    return out


def _cve_counts(
    con: duckdb.DuckDBPyConnection, scan_id: str, where: str, args: list[Any], limit: int | None
) -> list[GroupRow]:
    # hosts = Exchange hosts with a verdict for the CVE; `vulnerable`/`eol` among them.
    sql = (
        "SELECT e.key, count(*) AS hosts,"
        " count(*) FILTER (WHERE e.value = 'vulnerable') AS vulnerable,"
        " count(*) FILTER (WHERE e.value = 'vulnerable' AND eol) AS eol,"
        " count(*) FILTER (WHERE e.value = 'patched') AS patched,"
        " count(*) FILTER (WHERE e.value = 'undetermined') AS undetermined"
        " FROM (SELECT unnest(map_entries(cves)) AS e, eol FROM enrichment"
        f" WHERE scan_id = ?{where} AND is_exchange AND cves IS NOT NULL)"
        " GROUP BY 1 ORDER BY vulnerable DESC, hosts DESC, 1"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = con.execute(sql, [scan_id, *args]).fetchall()
    return [
        GroupRow(
            str(k),
            None,
            int(h),
            int(h),
            int(v),
            int(eol),
            {"patched": int(p), "undetermined": int(u)},
        )
        for k, h, v, eol, p, u in rows
    ]


def totals(con: duckdb.DuckDBPyConnection, scan_id: str, *, country: str | None = None) -> GroupRow:
    """Headline numbers for one scan (optionally one country)."""
    where, args = _country_filter(country)
    row = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_exchange),"
        " count(*) FILTER (WHERE is_exchange AND vulnerable),"
        " count(*) FILTER (WHERE is_exchange AND eol),"
        " count(DISTINCT country) FILTER (WHERE is_exchange AND vulnerable)"
        f" FROM enrichment WHERE scan_id = ?{where}",
        [scan_id, *args],
    ).fetchone()
    hosts, exchange, vulnerable, eol, countries = row if row else (0, 0, 0, 0, 0)
    return GroupRow(
        country.upper() if country else "all",
        country_name(country) if country else "all countries",
        int(hosts),
        int(exchange),
        int(vulnerable),
        int(eol),
        {"countries_with_vulnerable": int(countries)},
    )


def scanned_count(con: duckdb.DuckDBPyConnection, scan_id: str) -> int:
    """Target addresses attempted in the scan (answering or not)."""
    row = con.execute("SELECT count(*) FROM results WHERE scan_id = ?", [scan_id]).fetchone()
    return int(row[0]) if row else 0


def exchange_hosts(
    con: duckdb.DuckDBPyConnection,
    scan_id: str,
    *,
    country: str | None = None,
    only_vulnerable: bool = True,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Exchange hosts of one scan with what identifies them (all server-given strings raw)."""
    where, args = _country_filter(country, "e.country")
    vuln = " AND (e.vulnerable OR e.eol)" if only_vulnerable else ""
    cur = con.execute(
        "SELECT e.ip, e.port, r.hostname, e.country, e.asn, e.organisation, e.sector, e.build,"
        " e.product, e.cu, e.vulnerable, e.eol, e.vulnerable_cves, r.tls_subject_cn,"
        " json_extract_string(r.record, '$.tls.subject') AS tls_subject,"
        " r.ntlm_dns_domain, r.ntlm_netbios_domain,"
        " json_extract_string(r.record, '$.ntlm.netbios_computer') AS ntlm_computer,"
        " json_extract_string(r.record, '$.headers.\"x-feserver\"') AS x_feserver,"
        " strftime(e.ts, '%Y-%m-%dT%H:%M:%SZ') AS ts"
        " FROM enrichment e JOIN results r ON r.scan_id = e.scan_id AND r.ip = e.ip"
        " AND r.port = e.port AND r.ts = e.ts"
        f" WHERE e.scan_id = ? AND e.is_exchange{vuln}{where}"
        " ORDER BY e.vulnerable DESC, len(e.vulnerable_cves) DESC, e.country, e.ip, e.port"
        f" LIMIT {int(limit)}",
        [scan_id, *args],
    )
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def group_rows_json(rows: Sequence[GroupRow], **fields: Any) -> list[dict[str, Any]]:
    """Rows as JSON objects, each also carrying `fields` (scan id, sources)."""
    return [{**row.to_json(), **fields} for row in rows]


__all__ = [
    "GROUPS",
    "GroupBy",
    "GroupRow",
    "exchange_hosts",
    "group_counts",
    "group_rows_json",
    "pct",
    "resolve_scan",
    "scan_ids",
    "scan_info",
    "scanned_count",
    "totals",
]
