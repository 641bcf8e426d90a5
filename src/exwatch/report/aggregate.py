"""Per-group counts for one scan: country, AS, sector, organisation, version, CVE.

Units: a *host* is one answering target address (ip:port, one result row with status
`success`); `exchange` are hosts identified as on-prem Exchange (exwatch/onprem.py); `vulnerable`
Exchange hosts with at least one `vulnerable` verdict; `kev` Exchange hosts with a
vulnerable CVE in CISA's KEV catalog; `eol` Exchange hosts on an end-of-life product.
Percentages: exchange of hosts, vulnerable, kev and eol of Exchange hosts.  Each group also
carries its patch lag (lag.py: months and updates behind, as of the scan's day).  Counts
come from the scan's rollup (rollup.py), so they cost the same for a thousand hosts or ten
million.

These functions are the report's queries for every front end (CLI, HTML, web): each takes
an open store and returns typed rows whose `to_json()` is what the JSON and CSV formats print.
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, paths) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from exwatch.errors import StoreError, UsageError
from exwatch.onprem import on_prem_sql
from exwatch.report import rollup
from exwatch.report.lag import (
    BUCKETS,
    DEFAULT_THRESHOLDS,
    UNKNOWN,
    LagStats,
    Thresholds,
    build_lag,
    pct,
    summarise,
)
from exwatch.report.worldmap import country_name
from exwatch.store import Store

GroupBy = Literal["country", "asn", "sector", "organisation", "version", "cve"]
GROUPS: tuple[GroupBy, ...] = ("country", "asn", "sector", "organisation", "version", "cve")


@dataclass(frozen=True, slots=True)
class GroupRow:
    key: str | int | None
    name: str | None
    hosts: int
    exchange: int
    vulnerable: int
    eol: int
    extra: dict[str, int] = field(default_factory=dict)
    kev: int | None = None  # None where it does not apply (per CVE)
    lag: LagStats | None = None

    @property
    def exchange_pct(self) -> float | None:
        return pct(self.exchange, self.hosts)

    @property
    def vulnerable_pct(self) -> float | None:
        return pct(self.vulnerable, self.exchange)

    @property
    def eol_pct(self) -> float | None:
        return pct(self.eol, self.exchange)

    @property
    def kev_pct(self) -> float | None:
        return None if self.kev is None else pct(self.kev, self.exchange)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
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
        if self.kev is not None:
            out["kev"] = self.kev
            out["kev_pct"] = self.kev_pct
        if self.lag is not None:
            out.update(self.lag.to_json())
        return out


@dataclass(frozen=True, slots=True)
class MonthsRow:
    """One bucket of the months-behind distribution of a scan's Exchange hosts."""

    key: str  # a MONTH_BUCKETS label, or "unknown" (build hidden or not placeable)
    exchange: int  # Exchange hosts in the bucket
    of: int  # Exchange hosts in all buckets
    exact: int  # of which with an exact build (the others: at least this far behind)
    vulnerable: int
    kev: int
    eol: int

    @property
    def name(self) -> str:
        if self.key == UNKNOWN:
            return "build hidden or not in the table"
        if self.key == "0":
            return "on the newest update"
        if self.key.startswith(">"):
            return f"more than {self.key[1:]} months"
        return f"{self.key.replace('-', ' to ')} months"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "exchange": self.exchange,
            "exchange_pct": pct(self.exchange, self.of),
            "exact": self.exact,
            "vulnerable": self.vulnerable,
            "kev": self.kev,
            "eol": self.eol,
        }


def scan_ids(store: Store) -> list[str]:
    """All scans, oldest first (by start)."""
    return store.scan_ids()


def resolve_scan(store: Store, scan_id: str | None) -> str:
    """The given scan (checked) or the latest one."""
    if scan_id is not None:
        if not store.query("SELECT 1 FROM scans WHERE scan_id = ?", [scan_id]):
            known = ", ".join(scan_ids(store)[-5:]) or "none"
            raise UsageError(f"no scan {scan_id!r} in the store (latest: {known})")
        return scan_id
    ids = scan_ids(store)
    if not ids:
        raise UsageError("the store holds no scans yet; run `exwatch scan` or `exwatch ingest`")
    return ids[-1]


def scan_info(store: Store, scan_id: str) -> dict[str, Any]:
    d = store.dialect
    started = "coalesce(s.started_at, (SELECT min(ts) FROM results r WHERE r.scan_id = s.scan_id))"
    rows = store.query(
        "SELECT s.scan_id, s.name, s.origin, s.status,"
        f" {d.iso(started)},"
        f" {d.iso('s.finished_at')} FROM scans s WHERE s.scan_id = ?",
        [scan_id],
    )
    if not rows:
        raise StoreError(f"no scan {scan_id}")
    keys = ("scan_id", "name", "origin", "status", "started_at", "finished_at")
    return dict(zip(keys, rows[0], strict=True))


def country_code(country: str | None) -> str | None:
    if country is None:
        return None
    code = country.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise UsageError(f"--country takes an ISO 3166-1 alpha-2 code such as BE, not {country!r}")
    return code


def scan_day(store: Store, scan_id: str) -> date:
    """The day a scan started (UTC): patch lag is measured as of it."""
    started = scan_info(store, scan_id)["started_at"]
    try:
        return date.fromisoformat(str(started)[:10])
    except ValueError:
        return datetime.now(UTC).date()


def _lag_of(
    cells: Sequence[rollup.Cell], day: date, thresholds: Thresholds
) -> tuple[int, LagStats]:
    kev = sum(c[3] for c in cells)
    return kev, summarise(((c[0], c[1]) for c in cells), day, thresholds)


def group_counts(
    store: Store,
    scan_id: str,
    by: GroupBy,
    *,
    country: str | None = None,
    limit: int | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[GroupRow]:
    """Counts per group for one scan, most vulnerable first, each group (but per CVE) with
    its KEV count and patch lag."""
    code = country_code(country)
    if by not in GROUPS:
        raise UsageError(f"cannot group by {by!r}; one of {', '.join(GROUPS)}")
    merged = rollup.merged(store, scan_id, by, code, limit)
    cells: dict[str | None, list[rollup.Cell]] = {}
    day = scan_day(store, scan_id)
    if by != "cve":
        keys = None if limit is None else [r[0] for r in merged]
        cells = rollup.build_cells(store, scan_id, by, code, keys)
    out = []
    for key, label, hosts, exchange, vulnerable, eol, patched, undetermined in merged:
        kev: int | None = None
        lag: LagStats | None = None
        if by != "cve":
            kev, lag = _lag_of(cells.get(key, []), day, thresholds)
        value: str | int | None = key
        name = label
        if by == "country":
            name = country_name(key) if key else "unknown"
        elif by == "asn" and key is not None:
            value = int(key)
        elif by == "version" and key == rollup.HIDDEN_BUILD:
            value, name = None, rollup.BUILD_NOT_READ
        extra = {"patched": int(patched), "undetermined": int(undetermined)} if by == "cve" else {}
        out.append(
            GroupRow(
                value, name, int(hosts), int(exchange), int(vulnerable), int(eol), extra, kev, lag
            )
        )
    return out


def totals(
    store: Store,
    scan_id: str,
    *,
    country: str | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> GroupRow:
    """Headline numbers for one scan (optionally one country), with KEV count and lag."""
    code = country_code(country)
    rows = rollup.rows(store, scan_id, "country", code)
    every = [c for cs in rollup.build_cells(store, scan_id, "country", code).values() for c in cs]
    kev, lag = _lag_of(every, scan_day(store, scan_id), thresholds)
    hosts = sum(int(r[3]) for r in rows)
    exchange = sum(int(r[4]) for r in rows)
    vulnerable = sum(int(r[5]) for r in rows)
    eol = sum(int(r[6]) for r in rows)
    countries = sum(1 for r in rows if r[1] is not None and int(r[5]) > 0)
    return GroupRow(
        code or "all",
        country_name(code) if code else "all countries",
        hosts,
        exchange,
        vulnerable,
        eol,
        {"countries_with_vulnerable": countries},
        kev,
        lag,
    )


def months_distribution(
    store: Store, scan_id: str, *, country: str | None = None
) -> list[MonthsRow]:
    """How many Exchange hosts are how many months behind the newest update of their product
    line (as of the scan's day), per MONTH_BUCKETS bucket, then "unknown"."""
    code = country_code(country)
    day = scan_day(store, scan_id)
    sums = {b: [0, 0, 0, 0, 0] for b in (*BUCKETS, UNKNOWN)}
    for cells in rollup.build_cells(store, scan_id, "country", code).values():
        for build, hosts, vulnerable, kev, eol in cells:
            lag = build_lag(build, day)
            cell = sums[UNKNOWN if lag is None else lag.bucket]
            exact = hosts if lag is not None and lag.exact else 0
            for i, n in enumerate((hosts, exact, vulnerable, kev, eol)):
                cell[i] += n
    total = sum(c[0] for c in sums.values())
    return [MonthsRow(b, c[0], total, c[1], c[2], c[3], c[4]) for b, c in sums.items()]


def scanned_count(store: Store, scan_id: str) -> int:
    """Target addresses attempted in the scan (answering or not)."""
    return store.result_count(scan_id)


def exchange_hosts(
    store: Store,
    scan_id: str,
    *,
    country: str | None = None,
    only_vulnerable: bool = True,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Exchange hosts of one scan with what identifies them (all server-given strings raw),
    and how many months behind each is (`months_behind`, lag.py)."""
    code = country_code(country)
    d = store.dialect
    where = " AND e.country = ?" if code else ""
    vuln = " AND (e.vulnerable OR e.eol)" if only_vulnerable else ""
    order = (
        f"e.vulnerable DESC, {d.array_len('e.vulnerable_cves')} DESC, e.country, e.ip_sort, e.port"
    )
    # Pick the hosts in enrichment first, then join only those to results (for the names the
    # servers sent): a join of every result before the LIMIT costs seconds at 10 M rows.
    hosts = store.dicts(
        "WITH e AS (SELECT scan_id, ip, port, ts, ip_sort, country, asn, organisation, sector,"
        " build, product, cu, vulnerable, eol, vulnerable_cves FROM enrichment e"
        f" WHERE e.scan_id = ? AND {on_prem_sql('e')}{vuln}{where}"
        f" ORDER BY {order} LIMIT {int(limit)})"
        " SELECT e.ip, e.port, r.hostname, e.country, e.asn, e.organisation, e.sector, e.build,"
        " e.product, e.cu, e.vulnerable, e.eol, e.vulnerable_cves, r.tls_subject_cn,"
        " r.tls_subject, r.ntlm_dns_domain, r.ntlm_netbios_domain,"
        " r.ntlm_netbios_computer AS ntlm_computer, r.x_feserver,"
        f" {d.iso('e.ts')} AS ts"
        " FROM e LEFT JOIN results r ON r.scan_id = e.scan_id AND r.ip = e.ip"
        f" AND r.port = e.port AND r.ts = e.ts ORDER BY {order}",
        [scan_id, *([code] if code else [])],
    )
    day = scan_day(store, scan_id)
    for host in hosts:
        lag = build_lag(host["build"], day)
        host["months_behind"] = None if lag is None else lag.months
    return hosts


def group_rows_json(rows: Sequence[GroupRow], **fields: Any) -> list[dict[str, Any]]:
    """Rows as JSON objects, each also carrying `fields` (scan id, sources)."""
    return [{**row.to_json(), **fields} for row in rows]


__all__ = [
    "GROUPS",
    "GroupBy",
    "GroupRow",
    "MonthsRow",
    "country_code",
    "exchange_hosts",
    "group_counts",
    "group_rows_json",
    "months_distribution",
    "pct",
    "resolve_scan",
    "scan_day",
    "scan_ids",
    "scan_info",
    "scanned_count",
    "totals",
]
