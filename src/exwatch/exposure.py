"""Exposure facts the report and web views share (pure functions over the catalogue and
over one stored record).

- From the catalogue: `kev_cves` (the CVE ids in CISA's KEV catalog, which rollups, the
  KEV view and the web count with) and `cve_facts` (one row per catalogued CVE: identity,
  severity, KEV, fixing update; the web's CVE list).
- Months behind: `DAYS_PER_MONTH`, `MONTH_BUCKETS` and `month_bucket`, the distribution the
  patch-lag reports bucket by (report/lag.py).
- Over one record as stored (`record["cves"]` is `{CVE: verdict}`, `record["exchange"]
  ["patch_lag"]` the object of `PatchLag.to_json()`): `kev_hits`, `patch_lag_of` (computed
  from the build with the shipped catalogue for records written before patch lag existed)
  and `months_behind`.  The reports themselves read the store's columns and rollups.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from exwatch.assess import assess
from exwatch.errors import BuildParseError
from exwatch.knowledge.catalogue import Catalogue, default

DAYS_PER_MONTH = 30.4375  # average Gregorian month
# Upper bounds (inclusive, in months) of the distribution's buckets; the last is open.
MONTH_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("0", 0),
    ("1-3", 3),
    ("4-6", 6),
    ("7-12", 12),
    ("13-24", 24),
    ("25-36", 36),
    (">36", None),
)


def kev_cves(catalogue: Catalogue | None = None) -> frozenset[str]:
    """Ids of the catalogue's CVEs listed in CISA's KEV catalog."""
    return (catalogue or default()).kev_cves()


def kev_hits(record: Mapping[str, Any], catalogue: Catalogue | None = None) -> list[str]:
    """The record's CVEs that are both `vulnerable` and known exploited (KEV), sorted."""
    kev = kev_cves(catalogue)
    cves = record.get("cves") or {}
    return sorted(c for c, v in cves.items() if v == "vulnerable" and c in kev)


def patch_lag_of(
    record: Mapping[str, Any], *, catalogue: Catalogue | None = None, today: date | None = None
) -> dict[str, Any] | None:
    """The record's patch lag object, computed from its build when the record has none."""
    exchange = record.get("exchange")
    if not isinstance(exchange, Mapping):
        return None
    lag = exchange.get("patch_lag")
    if isinstance(lag, Mapping):
        return dict(lag)
    build = exchange.get("build")
    if not isinstance(build, str):
        return None
    try:
        computed = assess(build, catalogue=catalogue, today=today).patch_lag
    except BuildParseError:
        return None
    return None if computed is None else computed.to_json()


def months_behind(
    record: Mapping[str, Any],
    *,
    reference: str = "line",
    catalogue: Catalogue | None = None,
) -> int | None:
    """Whole months the host's build is behind the newest update of its product line
    (`reference="line"`) or of any Exchange line (`"any"`); None without a placeable build.

    For a CU-level build this is an upper bound (the record's patch_lag says exact=false).
    """
    lag = patch_lag_of(record, catalogue=catalogue)
    if lag is None:
        return None
    days = lag.get("days_behind_any" if reference == "any" else "days_behind")
    if not isinstance(days, int):
        return None
    return int(days // DAYS_PER_MONTH)


def month_bucket(months: int | None) -> str:
    """The distribution bucket of a months-behind value ("unknown" for None)."""
    if months is None:
        return "unknown"
    for label, upper in MONTH_BUCKETS:
        if upper is None or months <= upper:
            return label
    return MONTH_BUCKETS[-1][0]


def cve_facts(catalogue: Catalogue | None = None) -> list[dict[str, Any]]:
    """One row per catalogued CVE for "by CVE" views: identity, severity, KEV, fixing update."""
    cat = catalogue or default()
    return [
        {
            "cve": c.id,
            "name": c.name,
            "title": c.title,
            "published": c.published.isoformat(),
            "cvss": c.cvss,
            "severity": c.severity,
            "pre_auth": c.pre_auth,
            "kev": c.kev,
            "kev_added": None if c.kev_added is None else c.kev_added.isoformat(),
            "exploited": c.exploited,
            "fixed_by": c.fixed_by,
            "config": None if c.config is None else c.config.name,
        }
        for c in cat.cves
    ]


__all__ = [
    "MONTH_BUCKETS",
    "cve_facts",
    "kev_cves",
    "kev_hits",
    "month_bucket",
    "months_behind",
    "patch_lag_of",
]
