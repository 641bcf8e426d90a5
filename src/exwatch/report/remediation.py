"""Remediation after notification: who was told, what later scans showed, how fast it was fixed.

Reads the cases `exwatch notify` keeps (notify/cases.py).  The functions here only read (a
web page may call them); `exwatch report` first brings the cases up to date with the stored
scans (`notify.cases.refresh`), so a report after a rescan is true even when notify has not
run since.
Per group (organisation, sector or country, as enriched when the message was made), per host:

- notified at: the first message naming the host;
- fixed: every finding reported for the host is gone in a later scan (closed case);
  fixed at: the scan that showed the last of them gone; days to fix: fixed at - notified at
  (an upper bound: the fix happened at some point before that scan);
- still vulnerable: an open case that a scan after the message still showed;
- not rechecked: an open case no later scan has looked at (no answer, or no scan yet).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from exwatch.notify.cases import CaseRow, case_rows
from exwatch.store import Store

By = Literal["organisation", "sector", "country"]
BY_CHOICES: tuple[By, ...] = ("organisation", "sector", "country")
# Buckets of the "time to patch after notification" chart, in days (inclusive).
BUCKETS: tuple[tuple[str, int], ...] = (
    ("≤ 1 day", 1),
    ("≤ 7 days", 7),
    ("≤ 14 days", 14),
    ("≤ 30 days", 30),
    ("≤ 60 days", 60),
    ("≤ 90 days", 90),
    ("≤ 180 days", 180),
    ("≤ 365 days", 365),
)


@dataclass(frozen=True, slots=True)
class HostCase:
    """One notified host: its cases folded together."""

    ip: str
    port: int
    organisation: str | None
    sector: str | None
    country: str | None
    notified_at: datetime
    fixed_at: datetime | None  # None while any finding is open
    rechecked: bool  # a later scan showed an open finding again
    findings: int
    reminders: int
    escalated: bool

    @property
    def days_to_fix(self) -> float | None:
        if self.fixed_at is None:
            return None
        return round((self.fixed_at - self.notified_at).total_seconds() / 86400, 1)


def host_cases(store: Store, *, country: str | None = None) -> list[HostCase]:
    """Every notified host, its cases folded together."""
    by_host: dict[tuple[str, int], list[CaseRow]] = {}
    for row in case_rows(store, country):
        by_host.setdefault((row.ip, row.port), []).append(row)
    out = []
    for (ip, port), rows in by_host.items():
        first = min(rows, key=lambda r: r.opened_at)
        open_rows = [r for r in rows if r.state == "open"]
        closed = [r.closed_at for r in rows if r.closed_at is not None]
        out.append(
            HostCase(
                ip=ip,
                port=port,
                organisation=first.organisation,
                sector=first.sector,
                country=first.country,
                notified_at=first.opened_at,
                fixed_at=None if open_rows or not closed else max(closed),
                rechecked=any(r.seen_after > 0 for r in open_rows),
                findings=len(rows),
                reminders=max(r.reminders for r in rows),
                escalated=any(r.escalated for r in rows),
            )
        )
    return out


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def remediation(
    store: Store, by: By = "organisation", *, country: str | None = None
) -> list[dict[str, Any]]:
    """One row per group, most hosts still vulnerable first."""
    groups: dict[str | None, list[HostCase]] = {}
    for host in host_cases(store, country=country):
        groups.setdefault(getattr(host, by), []).append(host)
    rows: list[dict[str, Any]] = []
    for key, hosts in groups.items():
        fixed = [h for h in hosts if h.fixed_at is not None]
        days = [d for h in fixed if (d := h.days_to_fix) is not None]
        sectors = [h.sector for h in hosts if h.sector and by != "sector"]
        rows.append(
            {
                "key": key or "(none)",
                "sector": max(set(sectors), key=sectors.count) if sectors else None,
                "hosts_notified": len(hosts),
                "first_notified": _iso(min(h.notified_at for h in hosts)),
                "last_notified": _iso(max(h.notified_at for h in hosts)),
                "still_vulnerable": sum(1 for h in hosts if h.fixed_at is None and h.rechecked),
                "not_rechecked": sum(1 for h in hosts if h.fixed_at is None and not h.rechecked),
                "fixed": len(fixed),
                "fixed_pct": round(100.0 * len(fixed) / len(hosts), 1),
                "last_fixed": _iso(max((h.fixed_at for h in fixed if h.fixed_at), default=None)),
                "median_days_to_fix": round(statistics.median(days), 1) if days else None,
                "max_days_to_fix": max(days) if days else None,
                "reminders": sum(h.reminders for h in hosts),
                "escalated": sum(1 for h in hosts if h.escalated),
            }
        )
    rows.sort(key=lambda r: (-int(r["still_vulnerable"]), -int(r["hosts_notified"]), str(r["key"])))
    return rows


def time_to_fix(hosts: Sequence[HostCase]) -> list[tuple[str, int, int]]:
    """(bucket, hosts fixed within it, hosts notified) for the HTML chart (cumulative)."""
    total = len(hosts)
    days = [h.days_to_fix for h in hosts if h.days_to_fix is not None]
    return [(label, sum(1 for d in days if d <= limit), total) for label, limit in BUCKETS]


__all__ = ["BUCKETS", "BY_CHOICES", "By", "HostCase", "host_cases", "remediation", "time_to_fix"]
