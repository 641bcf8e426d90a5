"""Cases follow the scans: a finding reported to its owner stays open until a later scan
shows it gone.

For each open case, every observation of its host made after the case's first message
(and after the last observation already counted) is read in time order:

- the finding is still there -> `last_seen_at`, and `seen_after` counts the later scans
  that still showed it;
- the host answers and the finding is gone -> the case closes at that observation's time:
  `patched` (the CVE's verdict is now patched), `updated` (a full four-part build that has
  the fix, where the verdict stays undetermined only because the fix also needs a
  configuration step no version shows), `mitigated` (the opt-in checks saw a mitigation:
  not patched, but the reported path is closed), `not-vulnerable` (not affected),
  `not-exchange` (the address answers without on-prem Exchange), `exchange-online`,
  `suspect`, or `clean` (a compromise check now finds nothing at the known paths);
- an undetermined verdict of a CU-level build (the update cannot be seen), or no answer
  at all, says nothing: the case stays as it is.

`days to fix` is then closed_at - opened_at: an upper bound (the fix happened between the
last scan that saw the finding and the one that did not).
"""

# SQL here is assembled from fixed column names of this module only; values are bound.

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exwatch.notify.hosts import COMPROMISE_FINDING, COMPROMISED, compromise_of
from exwatch.notify.ledger import apply_sent
from exwatch.store import Store

_OPEN = (
    "SELECT case_id, ip, port, finding, opened_at, last_seen_at, last_seen_scan"
    " FROM notify_cases WHERE state = 'open'"
)
# Every observation made after the first message to any open case of the host; one row per
# observation, whatever the number of the host's cases.
_OBSERVATIONS = """
SELECT e.ip, e.port, e.scan_id, e.ts, e.is_exchange, e.vulnerable_cves, e.patched_cves,
       e.undetermined_cves, e.cve_ids, r.precision, r.record
FROM enrichment e
JOIN results r ON r.scan_id = e.scan_id AND r.ip = e.ip AND r.port = e.port AND r.ts = e.ts
JOIN (SELECT ip, port, min(opened_at) AS since FROM notify_cases WHERE state = 'open'
      GROUP BY ip, port) h ON h.ip = e.ip AND h.port = e.port AND e.ts > h.since
ORDER BY e.ts
"""
_UPDATES: list[tuple[str, str]] = [
    ("case_id", "text"),
    ("last_seen_at", "ts"),
    ("last_seen_scan", "text"),
    ("seen_delta", "int"),
    ("closed_at", "ts"),
    ("closed_scan", "text"),
    ("close_reason", "text"),
]


@dataclass
class Refresh:
    closed: dict[str, int] = field(default_factory=dict)  # reason -> cases closed
    still_present: int = 0  # observations that still showed an open finding

    @property
    def closed_total(self) -> int:
        return sum(self.closed.values())


def _record(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def judge(
    finding: str,
    is_exchange: bool,
    vulnerable: list[str],
    patched: list[str],
    undetermined: list[str],
    assessed: list[str],
    record: dict[str, Any],
    precision: str | None = None,
) -> tuple[str, str | None]:
    """("present" | "gone" | "unknown", close reason) for one finding in one observation."""
    if finding == COMPROMISE_FINDING:
        found = compromise_of(record)
        if found is None or found.state == "unknown":
            return "unknown", None
        if found.state == COMPROMISED:
            return "present", None
        return "gone", "clean"
    if record.get("exchange_online"):
        return "gone", "exchange-online"
    if record.get("suspect"):
        return "gone", "suspect"
    if not is_exchange:
        return "gone", "not-exchange"
    if finding in vulnerable:
        return "present", None
    verdicts = record.get("cves")
    if isinstance(verdicts, dict) and verdicts.get(finding) == "mitigated":
        return "gone", "mitigated"
    if finding not in assessed:
        return "unknown", None
    if finding in undetermined:
        # Only a full build shows that the update is in; a CU-level one cannot.
        return ("gone", "updated") if precision == "su" else ("unknown", None)
    return "gone", "patched" if finding in patched else "not-vulnerable"


def refresh(store: Store) -> Refresh:
    """Bring every open case up to date with the scans stored since it was last looked at."""
    result = Refresh()
    if not (store.has_table("notify_cases") and store.has_table("enrichment")):
        return result
    apply_sent(store)  # messages a crashed run sent but did not count yet
    cases: dict[tuple[str, int], list[list[Any]]] = {}
    for case_id, ip, port, finding, opened, last_at, last_scan in store.query(_OPEN):
        # [case_id, finding, opened_at, last_seen_at, last_scan, seen_delta, closed, changed]
        cases.setdefault((str(ip), int(port)), []).append(
            [case_id, str(finding), opened, last_at, last_scan, 0, None, False]
        )
    if not cases:
        return result
    for (ip, port, scan_id, ts, is_exchange, vulnerable, patched, undetermined, assessed,
         precision, record_text) in store.stream(_OBSERVATIONS):  # fmt: skip
        open_here = [c for c in cases.get((str(ip), int(port)), ()) if c[6] is None]
        if not open_here:
            continue
        record = _record(record_text)
        for case in open_here:
            if ts <= case[2] or (case[3] is not None and ts <= case[3]):
                continue  # before the first message, or already counted
            state, reason = judge(
                case[1], bool(is_exchange), list(vulnerable or ()), list(patched or ()),
                list(undetermined or ()), list(assessed or ()), record, precision,
            )  # fmt: skip
            if state == "present":
                result.still_present += 1
                if scan_id != case[4]:
                    case[5] += 1
                case[3], case[4], case[7] = ts, scan_id, True
            elif state == "gone":
                case[6] = (ts, scan_id, reason)
                result.closed[str(reason)] = result.closed.get(str(reason), 0) + 1
    rows = [
        (c[0], c[3], c[4], c[5], *(c[6] or (None, None, None)))
        for group in cases.values()
        for c in group
        if c[7] or c[6] is not None
    ]
    if not rows:
        return result
    with store.transaction():
        store.staging_table("case_updates", _UPDATES)
        store.bulk_insert("case_updates", _UPDATES, rows)
        store.execute(
            "UPDATE notify_cases SET last_seen_at = u.last_seen_at,"
            " last_seen_scan = u.last_seen_scan,"
            " seen_after = coalesce(notify_cases.seen_after, 0) + u.seen_delta,"
            " state = CASE WHEN u.closed_at IS NULL THEN 'open' ELSE 'closed' END,"
            " closed_at = u.closed_at, closed_scan = u.closed_scan, close_reason = u.close_reason"
            " FROM case_updates u WHERE notify_cases.case_id = u.case_id"
            " AND notify_cases.state = 'open'"
        )
        store.drop_staging("case_updates")
    return result


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One case as the remediation view reads it."""

    case_id: str
    ip: str
    port: int
    finding: str
    state: str
    organisation: str | None
    sector: str | None
    country: str | None
    opened_at: datetime
    reminders: int
    escalated: bool
    seen_after: int
    last_seen_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None


def case_rows(store: Store, country: str | None = None) -> list[CaseRow]:
    if not store.has_table("notify_cases"):
        return []
    sql = (
        "SELECT case_id, ip, port, finding, state, organisation, sector, country, opened_at,"
        " reminders, escalated_at, seen_after, last_seen_at, closed_at, close_reason"
        " FROM notify_cases"
    )
    args: list[Any] = []
    if country:
        sql += " WHERE country = ?"
        args.append(country.upper())
    out = []
    for row in store.query(sql + " ORDER BY opened_at, case_id", args):
        (case_id, ip, port, finding, state, organisation, sector, ctry, opened, reminders,
         escalated, seen_after, last_seen, closed_at, reason) = row  # fmt: skip
        out.append(
            CaseRow(
                str(case_id),
                str(ip),
                int(port),
                str(finding),
                str(state),
                organisation,
                sector,
                ctry,
                opened,
                int(reminders or 0),
                escalated is not None,
                int(seen_after or 0),
                last_seen,
                closed_at,
                reason,
            )
        )
    return out


__all__ = ["CaseRow", "Refresh", "case_rows", "judge", "refresh"]
