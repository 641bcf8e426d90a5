"""What was sent, in the store: messages, their items, cases, and the one-sender lock.

Crash safety rests on the order of writes.  A planned message is recorded `pending`, with its
items and its raw bytes, before it is handed to the SMTP server; it becomes `sent` in one
statement right after the server accepted it.  Its cases open or move on in batches
(`apply_sent`: at the end of a sending run and before any planning or report), so a crash
between the two loses nothing.  A run that
starts finds any pending message of an earlier run and sends it first, byte for byte (same
Message-ID); findings named by a pending message are never planned again meanwhile.  The
one window left is between the server's "250 accepted" and that commit: a kill there makes
the next run send the message again, with the same Message-ID, which receiving systems
recognise as the same message.

Only one `notify --send` runs per store at a time: a lock row in `meta` names the run,
process and host; a lock whose process is gone (same host) or older than a day is taken over.
"""

# SQL here is assembled from this module's constant clauses only; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from exwatch.errors import StoreError
from exwatch.notify.plan import CaseKey, OpenCase
from exwatch.store import Store
from exwatch.store.schema import NOTIFICATION_ITEMS, NOTIFICATIONS

LOCK_KEY = "notify_lock"
STALE_LOCK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ItemRow:
    case_id: str
    ip: str
    port: int
    finding: str
    role: str
    organisation: str | None
    sector: str | None
    country: str | None
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class Record:
    """One message as recorded before it is sent."""

    notification_id: str
    run_id: str
    scan_id: str
    kind: str
    recipients: tuple[str, ...]
    cc: tuple[str, ...]
    contact_key: str
    organisation: str | None
    sector: str | None
    country: str | None
    language: str
    contact_source: str
    contact_reason: str
    subject: str
    message_id: str
    hosts: tuple[str, ...]
    findings: list[dict[str, Any]]
    raw: bytes
    items: tuple[ItemRow, ...]


@dataclass(frozen=True, slots=True)
class Pending:
    notification_id: str
    message_id: str
    recipients: tuple[str, ...]
    cc: tuple[str, ...]
    raw: bytes
    attempts: int
    subject: str
    kind: str
    organisation: str | None
    language: str | None


def usable(store: Store) -> bool:
    return store.has_table("notifications") and store.has_table("notify_cases")


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def open_cases(store: Store, scan_id: str | None = None) -> dict[CaseKey, OpenCase]:
    """Open cases, of the hosts that answered in `scan_id` when given (planning needs no
    others: a host that did not answer has no finding to report)."""
    sql = (
        "SELECT c.case_id, c.ip, c.port, c.finding, c.contact_key, c.opened_at, c.last_sent_at,"
        " c.reminders, c.escalated_at FROM notify_cases c WHERE c.state = 'open'"
    )
    args: list[Any] = []
    if scan_id is not None:
        sql += (
            " AND EXISTS (SELECT 1 FROM enrichment e WHERE e.scan_id = ? AND e.ip = c.ip"
            " AND e.port = c.port)"
        )
        args.append(scan_id)
    out: dict[CaseKey, OpenCase] = {}
    for case_id, ip, port, finding, contact_key, opened, last, reminders, escalated in store.query(
        sql, args
    ):
        out[(str(ip), int(port), str(finding))] = OpenCase(
            case_id=str(case_id),
            ip=str(ip),
            port=int(port),
            finding=str(finding),
            contact_key=contact_key,
            opened_at=_aware(opened),
            last_sent_at=_aware(last),
            reminders=int(reminders or 0),
            escalated_at=None if escalated is None else _aware(escalated),
        )
    return out


def notified_contacts(store: Store) -> set[str]:
    """Contacts with at least one open case (new findings to them are follow-ups)."""
    rows = store.query(
        "SELECT DISTINCT contact_key FROM notify_cases WHERE state = 'open'"
        " AND contact_key IS NOT NULL"
    )
    return {str(r[0]) for r in rows}


def in_flight(store: Store) -> set[CaseKey]:
    """(ip, port, finding) named by a message still pending."""
    rows = store.query(
        "SELECT i.ip, i.port, i.finding FROM notification_items i JOIN notifications n"
        " ON n.notification_id = i.notification_id WHERE n.state = 'pending'"
    )
    return {(str(ip), int(port), str(f)) for ip, port, f in rows}


def pending_messages(store: Store) -> list[Pending]:
    rows = store.query(
        "SELECT notification_id, message_id, recipients, cc, message, attempts, subject, kind,"
        " organisation, language FROM notifications WHERE state = 'pending'"
        " ORDER BY created_at, notification_id"
    )
    return [
        Pending(
            notification_id=str(nid),
            message_id=str(mid),
            recipients=tuple(recipients or ()),
            cc=tuple(cc or ()),
            raw=str(raw).encode("utf-8"),
            attempts=int(attempts or 0),
            subject=str(subject or ""),
            kind=str(kind),
            organisation=organisation,
            language=language,
        )
        for nid, mid, recipients, cc, raw, attempts, subject, kind, organisation, language in rows
    ]


def record_pending(store: Store, records: Sequence[Record], at: datetime) -> None:
    """Record planned messages as pending, in one transaction (all or none), in bulk."""
    if not records:
        return
    messages = [
        (
            rec.notification_id, rec.run_id, rec.scan_id, rec.kind, "pending",
            list(rec.recipients), list(rec.cc), rec.contact_key, rec.organisation, rec.sector,
            rec.country, rec.language, rec.contact_source, rec.contact_reason, rec.subject,
            rec.message_id, list(rec.hosts), len(rec.hosts), len(rec.findings),
            json.dumps(rec.findings), at, None, 0, None, None,
            # The raw message is 7-bit ASCII (encoded headers, quoted-printable, base64).
            rec.raw.decode("ascii"), False,
        )
        for rec in records
    ]  # fmt: skip
    items = [
        (
            rec.notification_id, item.case_id, item.ip, item.port, item.finding, item.role,
            item.organisation, item.sector, item.country, item.seen_at,
        )
        for rec in records
        for item in rec.items
    ]  # fmt: skip
    with store.transaction():
        store.lock("notify")
        store.bulk_insert("notifications", NOTIFICATIONS, messages)
        store.bulk_insert("notification_items", NOTIFICATION_ITEMS, items)


def mark_sent(store: Store, notification_id: str, reply: str, at: datetime) -> bool:
    """The server accepted the message: one statement, committed at once (the window a
    crash can hit stays as short as it can be).  Its cases follow in `apply_sent`.  False
    when it was already recorded as sent."""
    changed = store.modify(
        "UPDATE notifications SET state = 'sent', sent_at = ?, smtp_reply = ?,"
        " attempts = coalesce(attempts, 0) + 1, last_error = NULL"
        " WHERE notification_id = ? AND state = 'pending'",
        [at, reply[:500], notification_id],
    )
    return bool(changed)


_UNAPPLIED = (
    "FROM notification_items i JOIN notifications n ON n.notification_id = i.notification_id"
    " WHERE n.state = 'sent' AND NOT coalesce(n.cases_applied, FALSE)"
)


def apply_sent(store: Store) -> int:
    """Open or move on the cases of every sent message not applied yet, in one transaction:
    new findings open their cases (unless one is open already), reminders count, escalations
    are stamped.  Runs before any planning and at the end of a sending run."""
    with store.transaction():
        store.lock("notify-cases")
        pending = int(
            store.scalar(
                "SELECT count(*) FROM notifications WHERE state = 'sent'"
                " AND NOT coalesce(cases_applied, FALSE)"
            )
            or 0
        )
        if not pending:
            return 0
        store.execute(
            "INSERT INTO notify_cases (case_id, ip, port, finding, state, organisation, sector,"
            " country, contact_key, opened_scan, opened_at, first_notification, last_sent_at,"
            " last_notification, reminders, last_seen_scan, last_seen_at, seen_after)"
            " SELECT i.case_id, i.ip, i.port, i.finding, 'open', i.organisation, i.sector,"
            " i.country, n.contact_key, n.scan_id, n.sent_at, n.notification_id, n.sent_at,"
            f" n.notification_id, 0, n.scan_id, i.seen_at, 0 {_UNAPPLIED} AND i.role = 'new'"
            " AND NOT EXISTS (SELECT 1 FROM notify_cases c WHERE c.ip = i.ip AND c.port = i.port"
            " AND c.finding = i.finding AND c.state = 'open')"
        )
        for role, counted in (("reminder", True), ("escalation", False)):
            store.execute(
                "UPDATE notify_cases SET"
                + (
                    " reminders = coalesce(notify_cases.reminders, 0) + u.k,"
                    if counted
                    else " escalated_at = u.at,"
                )
                + " last_sent_at = u.at, last_notification = u.nid, contact_key = u.contact"
                " FROM (SELECT i.case_id, count(*) AS k, max(n.sent_at) AS at,"
                f" max(n.notification_id) AS nid, max(n.contact_key) AS contact {_UNAPPLIED}"
                " AND i.role = ? GROUP BY i.case_id) u WHERE notify_cases.case_id = u.case_id",
                [role],
            )
        store.execute(
            "UPDATE notifications SET cases_applied = TRUE WHERE state = 'sent'"
            " AND NOT coalesce(cases_applied, FALSE)"
        )
    return pending


def mark_failed(
    store: Store, notification_id: str, error: str, *, permanent: bool, at: datetime
) -> None:
    """A refusal: permanent ones end the message (`failed`, its findings are planned again
    next run); temporary ones leave it pending for the next run."""
    if permanent:
        store.execute(
            "UPDATE notifications SET state = 'failed', attempts = coalesce(attempts, 0) + 1,"
            " last_error = ?, sent_at = ? WHERE notification_id = ? AND state = 'pending'",
            [error[:500], at, notification_id],
        )
    else:
        store.execute(
            "UPDATE notifications SET attempts = coalesce(attempts, 0) + 1, last_error = ?"
            " WHERE notification_id = ? AND state = 'pending'",
            [error[:500], notification_id],
        )


# -- the one-sender lock ------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(store: Store, run_id: str, at: datetime) -> str | None:
    """Take the sender lock; returns a note when a dead holder's lock was taken over.
    StoreError when another live run holds it."""
    me = {"run": run_id, "pid": os.getpid(), "host": socket.gethostname(), "at": at.isoformat()}
    with store.transaction():
        store.lock("notify-sender")
        rows = store.query("SELECT value FROM meta WHERE key = ?", [LOCK_KEY])
        note = None
        if rows:
            try:
                held = json.loads(rows[0][0])
            except (TypeError, ValueError):
                held = {}
            since = _parse(held.get("at"))
            same_host = held.get("host") == me["host"]
            pid = held.get("pid")
            dead = same_host and isinstance(pid, int) and not _alive(pid)
            stale = since is None or at - since > STALE_LOCK
            if not (dead or stale):
                raise StoreError(
                    f"another `exwatch notify --send` (run {held.get('run')}, process {pid} on"
                    f" {held.get('host')}) is sending from this store; wait for it to finish"
                )
            note = (
                f"took over the sender lock of run {held.get('run')} (process {pid} on"
                f" {held.get('host')} is gone)"
            )
            store.execute("DELETE FROM meta WHERE key = ?", [LOCK_KEY])
        store.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [LOCK_KEY, json.dumps(me)])
    return note


def release(store: Store, run_id: str) -> None:
    rows = store.query("SELECT value FROM meta WHERE key = ?", [LOCK_KEY])
    if rows:
        try:
            held = json.loads(rows[0][0])
        except (TypeError, ValueError):
            held = {}
        if held.get("run") == run_id:
            store.execute("DELETE FROM meta WHERE key = ?", [LOCK_KEY])


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = [
    "LOCK_KEY",
    "ItemRow",
    "Pending",
    "Record",
    "acquire",
    "apply_sent",
    "in_flight",
    "mark_failed",
    "mark_sent",
    "notified_contacts",
    "open_cases",
    "pending_messages",
    "record_pending",
    "release",
    "usable",
]
