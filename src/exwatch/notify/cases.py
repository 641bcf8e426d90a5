"""Cases follow the scans: a finding reported to its owner stays open until a later scan
shows it gone.

For each open case, every observation of its host made after the case's first message
(and after the last observation already counted) is read in time order:

- the finding is still there -> `last_seen_at`, and `seen_after` counts the later scans
  that still showed it;
- the host answers and the finding is gone -> the case closes at that observation's time:
  `patched` (the CVE's verdict is now patched), `updated` (a full four-part build that has
  the fix, where the verdict stays undetermined only because the fix also needs a
  configuration step no version shows), `not-vulnerable` (not affected or mitigated),
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
from exwatch.store import Store

_OBSERVATIONS = """
SELECT c.case_id, c.finding, c.last_seen_scan, e.scan_id, e.ts, e.is_exchange,
       e.vulnerable_cves, e.patched_cves, e.undetermined_cves, e.cve_ids, r.precision, r.record
FROM notify_cases c
JOIN enrichment e ON e.ip = c.ip AND e.port = c.port
JOIN results r ON r.scan_id = e.scan_id AND r.ip = e.ip AND r.port = e.port AND r.ts = e.ts
WHERE c.state = 'open' AND e.ts > c.opened_at
  AND (c.last_seen_at IS NULL OR e.ts > c.last_seen_at)
ORDER BY c.case_id, e.ts
"""


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
    rows = store.query(_OBSERVATIONS)
    updates: dict[str, dict[str, Any]] = {}
    closed: set[str] = set()
    for (case_id, finding, last_scan, scan_id, ts, is_exchange, vulnerable, patched,
         undetermined, assessed, precision, record_text) in rows:  # fmt: skip
        if case_id in closed:
            continue
        state, reason = judge(
            str(finding),
            bool(is_exchange),
            list(vulnerable or ()),
            list(patched or ()),
            list(undetermined or ()),
            list(assessed or ()),
            _record(record_text),
            precision,
        )
        upd = updates.setdefault(case_id, {"seen": 0, "last_scan": last_scan})
        if state == "present":
            result.still_present += 1
            if scan_id != upd["last_scan"]:
                upd["seen"] += 1
            upd.update(last_scan=scan_id, last_at=ts)
        elif state == "gone":
            closed.add(case_id)
            upd.update(closed_at=ts, closed_scan=scan_id, reason=reason)
            result.closed[str(reason)] = result.closed.get(str(reason), 0) + 1
    if not updates:
        return result
    with store.transaction():
        for case_id, upd in updates.items():
            if "last_at" in upd:
                store.execute(
                    "UPDATE notify_cases SET last_seen_at = ?, last_seen_scan = ?,"
                    " seen_after = coalesce(seen_after, 0) + ? WHERE case_id = ?",
                    [upd["last_at"], upd["last_scan"], upd["seen"], case_id],
                )
            if "closed_at" in upd:
                store.execute(
                    "UPDATE notify_cases SET state = 'closed', closed_at = ?, closed_scan = ?,"
                    " close_reason = ? WHERE case_id = ? AND state = 'open'",
                    [upd["closed_at"], upd["closed_scan"], upd["reason"], case_id],
                )
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
