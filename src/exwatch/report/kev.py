"""The KEV-only view: Exchange hosts of one scan with a known-exploited CVE.

A host is listed when one of its `vulnerable` verdicts is a CVE in CISA's Known Exploited
Vulnerabilities catalog as the shipped catalogue records it (`exwatch.exposure.kev_cves`):
the servers to notify first.  Each row names those CVEs, what identifies the server, and its
patch lag as of the scan's day.  Server-given strings (host name, certificate subject, NTLM
names, X-FEServer) are returned raw; every output escapes them.
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, the KEV list) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from typing import Any, NamedTuple

from exwatch.exposure import kev_cves
from exwatch.onprem import on_prem_sql
from exwatch.report.aggregate import country_code, scan_day
from exwatch.report.lag import build_lag
from exwatch.store import Store


class KevHost(NamedTuple):
    """One host of the KEV-only view (a named tuple: the list can run to a million rows)."""

    ip: str
    port: int
    hostname: str | None
    country: str | None
    asn: int | None
    organisation: str | None
    sector: str | None
    build: str | None
    product: str | None
    cu: str | None
    eol: bool
    kev_cves: tuple[str, ...]  # its vulnerable CVEs that are in KEV
    vulnerable_cves: int  # how many CVEs it is vulnerable to in all
    months_behind: int | None  # at least; None: build not placeable
    sus_behind: int | None
    lag_exact: bool | None
    server_name: str | None  # NTLM computer name, else X-FEServer
    tls_subject_cn: str | None
    ts: str

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "port": self.port,
            "hostname": self.hostname,
            "country": self.country,
            "asn": self.asn,
            "organisation": self.organisation,
            "sector": self.sector,
            "build": self.build,
            "product": self.product,
            "cu": self.cu,
            "eol": self.eol,
            "kev_cves": list(self.kev_cves),
            "vulnerable_cves": self.vulnerable_cves,
            "months_behind": self.months_behind,
            "sus_behind": self.sus_behind,
            "lag_exact": self.lag_exact,
            "server_name": self.server_name,
            "tls_subject_cn": self.tls_subject_cn,
            "ts": self.ts,
        }


def kev_hosts(
    store: Store, scan_id: str, *, country: str | None = None, limit: int | None = None
) -> list[KevHost]:
    """Exchange hosts with a vulnerable known-exploited CVE, by country, organisation and
    address."""
    kev = kev_cves()
    if not kev:
        return []
    code = country_code(country)
    d = store.dialect
    where = " AND e.country = ?" if code else ""
    order = "e.country NULLS LAST, e.organisation NULLS LAST, e.ip_sort, e.port"
    # The KEV hosts are picked in enrichment, then joined to results for the names the
    # servers sent (joining every result first costs seconds at 10 M rows).
    rows = store.query(
        "WITH e AS (SELECT scan_id, ip, port, ts, ip_sort, country, asn, organisation, sector,"
        " build, product, cu, eol, vulnerable_cves FROM enrichment e"
        f" WHERE e.scan_id = ? AND {on_prem_sql('e')}"
        f" AND {d.array_overlaps('e.vulnerable_cves')}{where} ORDER BY {order}"
        + ("" if limit is None else f" LIMIT {int(limit)}")
        + ") SELECT e.ip, e.port, r.hostname, e.country, e.asn, e.organisation, e.sector,"
        " e.build, e.product, e.cu, coalesce(e.eol, FALSE), e.vulnerable_cves,"
        " coalesce(r.ntlm_netbios_computer, r.x_feserver), r.tls_subject_cn,"
        f" {d.iso('e.ts')}"
        " FROM e LEFT JOIN results r ON r.scan_id = e.scan_id AND r.ip = e.ip"
        f" AND r.port = e.port AND r.ts = e.ts ORDER BY {order}",
        [scan_id, sorted(kev), *([code] if code else [])],
    )
    day = scan_day(store, scan_id)
    out = []
    for (ip, port, hostname, cc, asn, org, sector, build, product, cu, eol, vulnerable,
         server, cn, ts) in rows:  # fmt: skip
        lag = build_lag(build, day)
        cves = list(vulnerable or ())
        out.append(
            KevHost(
                ip=str(ip),
                port=int(port),
                hostname=hostname,
                country=cc,
                asn=None if asn is None else int(asn),
                organisation=org,
                sector=sector,
                build=build,
                product=product,
                cu=cu,
                eol=bool(eol),
                kev_cves=tuple(sorted(c for c in cves if c in kev)),
                vulnerable_cves=len(cves),
                months_behind=None if lag is None else lag.months,
                sus_behind=None if lag is None else lag.sus,
                lag_exact=None if lag is None else lag.exact,
                server_name=server,
                tls_subject_cn=cn,
                ts=str(ts),
            )
        )
    return out


__all__ = ["KevHost", "kev_hosts"]
