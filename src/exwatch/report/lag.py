"""Patch lag of groups of hosts, from the builds they run (pure: no store, no clock).

A host's patch lag is a function of its build and of the updates Microsoft had released
(`exwatch.patch_lag`), so reports keep host counts per group and build (`rollup_builds`)
and derive the lag here, once per distinct build:

- **As of the scan's day.**  The lag is measured against the updates released up to the day
  the scan started (the shipped build table cut at that day), so a scan reported a year
  later with a newer exwatch still says how far behind the hosts were *then*.  Support
  (does the CU still receive updates, is the line supported) is judged on that day too.
  With the same build table this is exactly the `exchange.patch_lag` of the scan's records.
- **What is certain.**  A build known to the table has an exact lag.  A CU-level build
  (three parts: the server may carry any update of its CU) counts as if it carried its CU's
  newest update: 0 updates behind and the months since that update, the least it can be.
  An unknown build between two known ones counts from the next known one.  `exact` says how
  many hosts' figures are exact; the records' own `patch_lag` keeps the upper bounds.

Months are whole months of 30.4375 days behind the newest update of the host's product
line, bucketed as `exwatch.exposure.MONTH_BUCKETS`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, NamedTuple

from exwatch.assess import assess
from exwatch.errors import BuildParseError
from exwatch.exposure import DAYS_PER_MONTH, MONTH_BUCKETS, month_bucket
from exwatch.knowledge.catalogue import Catalogue, default, group_cus, update_dates
from exwatch.model import Build

BUCKETS: tuple[str, ...] = tuple(label for label, _ in MONTH_BUCKETS)
UNKNOWN = "unknown"
_BUCKET_INDEX = {label: i for i, label in enumerate(BUCKETS)}
_FIELDS = tuple(f"months_{b.replace('>', 'over_').replace('-', '_')}" for b in (*BUCKETS, UNKNOWN))


def bucket_field(label: str) -> str:
    """The JSON/CSV field name of a months bucket: `months_0`, `months_1_3`, `months_over_36`."""
    return _FIELDS[len(BUCKETS) if label == UNKNOWN else _BUCKET_INDEX[label]]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What "behind" means in per-group shares: at least `sus` updates of the host's CU, at
    least `months` months behind the newest update of its line."""

    sus: int = 1
    months: int = 6


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class BuildLag:
    """The least lag a build can have, as of one day (see the module docstring)."""

    exact: bool  # a build known to the table: every figure is exact
    months: int  # whole months behind the newest update of the product line, at least
    sus: int  # updates of the host's CU newer than its build, at least
    cu_receives_sus: bool  # the CU got the line's newest update and the line is supported
    cus_behind: int | None  # CUs behind the newest of the line; None: line out of support

    @property
    def bucket(self) -> str:
        return month_bucket(self.months)

    @functools.cached_property
    def bucket_index(self) -> int:
        return _BUCKET_INDEX[self.bucket]


def _without_cves(cat: Catalogue) -> Catalogue:
    # Patch lag needs builds and products only; verdicts for ~130 CVEs per build would be
    # most of the cost of a report's lag.
    return replace(cat, cves=())


@functools.lru_cache(maxsize=16)
def catalogue_as_of(day: date) -> Catalogue:
    """The shipped build table as it stood on `day` (updates released after it left out)."""
    cat = default()
    rows = tuple(r for r in cat.rows if r.release_date <= day)
    if len(rows) == len(cat.rows):
        return _without_cves(cat)
    return replace(
        cat,
        rows=rows,
        cus=group_cus(rows),
        cves=(),
        by_build={r.build.as_tuple(): r for r in rows},
        update_dates=update_dates(rows),
    )


@functools.lru_cache(maxsize=8192)
def build_lag(build: str | None, day: date) -> BuildLag | None:
    """The lag of one build as of `day`; None for a hidden, unparsable or unplaceable build."""
    if build is None:
        return None
    try:
        b = Build.parse(build)
    except BuildParseError:
        return None
    view = catalogue_as_of(day)
    placed = assess(b, catalogue=view, today=day)
    lag = placed.patch_lag
    if lag is None or placed.product_id is None:
        return None
    if lag.exact:
        days, sus = lag.days_behind, lag.sus_behind
    else:
        cu_latest = view.by_build[Build.parse(lag.cu_latest).as_tuple()]
        newest_possible = cu_latest.release_date
        sus = 0
        if b.revision is not None:
            # An unknown four-part build: older than the next known build of its CU.
            sus = lag.sus_behind
            cu = view.cu_named(cu_latest.product, cu_latest.cu)
            newer = [r for r in (cu.rows if cu else ()) if r.build.as_tuple() > b.as_tuple()]
            if newer:
                newest_possible = newer[0].release_date
        latest = view.latest_rows[placed.product_id].release_date
        days = max(0, (latest - newest_possible).days)
    return BuildLag(
        exact=lag.exact,
        months=int(days // DAYS_PER_MONTH),
        sus=sus,
        cu_receives_sus=lag.cu_receives_sus,
        cus_behind=lag.cus_behind,
    )


def pct(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(100.0 * part / whole, 1)


def weighted_median(values: Iterable[tuple[int, int]]) -> float | None:
    """Median of values given as (value, how many times); None for none."""
    pairs = sorted((v, n) for v, n in values if n > 0)
    total = sum(n for _, n in pairs)
    if total == 0:
        return None

    def at(index: int) -> int:  # the value at a 0-based position in the sorted expansion
        seen = 0
        for value, n in pairs:
            seen += n
            if index < seen:
                return value
        return pairs[-1][0]

    return (at((total - 1) // 2) + at(total // 2)) / 2


class LagStats(NamedTuple):
    """Patch lag of a group of on-prem Exchange hosts.

    Shares of `placed` hosts (with a placeable build) except `behind_cu`, a share of
    `supported` (hosts on a product line still in public support).  A named tuple, not a
    dataclass: an AS report makes one per AS (tens of thousands), and frozen dataclasses
    cost five times as much to build."""

    exchange: int  # on-prem Exchange hosts in the group
    placed: int  # of which with a build placed in the table (the others: hidden, unknown)
    exact: int  # of which with an exact build (the rest count as their CU's newest update)
    median_months: float | None
    buckets: tuple[int, ...]  # hosts per MONTH_BUCKETS bucket
    behind_sus: int  # at least thresholds.sus updates of their CU behind
    behind_months: int  # at least thresholds.months months behind
    cu_no_sus: int  # on a CU that no longer receives security updates
    supported: int  # on a product line in public support
    behind_cu: int  # of those, not on the newest CU
    thresholds: Thresholds

    @property
    def unknown(self) -> int:
        return self.exchange - self.placed

    def to_json(self) -> dict[str, Any]:
        t = self.thresholds
        return {
            "lag_hosts": self.placed,
            "lag_exact": self.exact,
            "lag_unknown": self.unknown,
            "median_months_behind": self.median_months,
            "behind_sus_min": t.sus,
            "behind_sus": self.behind_sus,
            "behind_sus_pct": pct(self.behind_sus, self.placed),
            "behind_months_min": t.months,
            "behind_months": self.behind_months,
            "behind_months_pct": pct(self.behind_months, self.placed),
            "cu_no_sus": self.cu_no_sus,
            "cu_no_sus_pct": pct(self.cu_no_sus, self.placed),
            "supported": self.supported,
            "behind_cu": self.behind_cu,
            "behind_cu_pct": pct(self.behind_cu, self.supported),
            **dict(zip(_FIELDS, (*self.buckets, self.unknown), strict=True)),
        }


def summarise(
    cells: Iterable[tuple[str | None, int]],
    day: date,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> LagStats:
    """LagStats of hosts given as (build, hosts) cells, as of `day`."""
    # Called once per group (60,000 of them in an AS report): kept to plain int arithmetic.
    exchange = placed = exact = behind_sus = behind_months = 0
    cu_no_sus = supported = behind_cu = 0
    buckets = [0] * len(BUCKETS)
    months: dict[int, int] = {}
    least_sus, least_months = thresholds.sus, thresholds.months
    for build, hosts in cells:
        n = int(hosts)
        exchange += n
        lag = build_lag(build, day)
        if lag is None or n == 0:
            continue
        placed += n
        if lag.exact:
            exact += n
        months[lag.months] = months.get(lag.months, 0) + n
        buckets[lag.bucket_index] += n
        if lag.sus >= least_sus:
            behind_sus += n
        if lag.months >= least_months:
            behind_months += n
        if not lag.cu_receives_sus:
            cu_no_sus += n
        if lag.cus_behind is not None:
            supported += n
            if lag.cus_behind > 0:
                behind_cu += n
    if len(months) == 1:
        median: float | None = float(next(iter(months)))
    else:
        median = weighted_median(months.items())
    return LagStats(
        exchange=exchange,
        placed=placed,
        exact=exact,
        median_months=None if median is None else round(median, 1),
        buckets=tuple(buckets),
        behind_sus=behind_sus,
        behind_months=behind_months,
        cu_no_sus=cu_no_sus,
        supported=supported,
        behind_cu=behind_cu,
        thresholds=thresholds,
    )


__all__ = [
    "BUCKETS",
    "DEFAULT_THRESHOLDS",
    "UNKNOWN",
    "BuildLag",
    "LagStats",
    "Thresholds",
    "bucket_field",
    "build_lag",
    "catalogue_as_of",
    "pct",
    "summarise",
    "weighted_median",
]
