"""What was sent, in the store: messages, their items, cases, and the one-sender lock.

Crash safety rests on the order of writes.  A planned message is recorded `pending`, with its
items and its raw bytes, before it is handed to the SMTP server; it becomes `sent` (and its
cases open or move on) in one transaction right after the server accepted it.  A run that
starts finds any pending message of an earlier run and sends it first, byte for byte (same
Message-ID); findings named by a pending message are never planned again meanwhile.  The
one window left is between the server's "250 accepted" and that commit: a kill there makes
the next run send the message again, with the same Message-ID, which receiving systems
recognise as the same message.

Only one `notify --send` runs per store at a time: a lock row in `meta` names the run,
process and host; a lock whose process is gone (same host) or older than a day is taken over.
"""

# SQL here is assembled from fixed column names of this module only; values are bound.
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
_NOTIFICATION_COLUMNS = [name for name, _ in NOTIFICATIONS]
_ITEM_COLUMNS = [name for name, _ in NOTIFICATION_ITEMS]


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


def open_cases(store: Store) -> dict[CaseKey, OpenCase]:
    rows = store.query(
        "SELECT case_id, ip, port, finding, contact_key, opened_at, last_sent_at, reminders,"
        " escalated_at FROM notify_cases WHERE state = 'open'"
    )
    out: dict[CaseKey, OpenCase] = {}
    for case_id, ip, port, finding, contact_key, opened, last, reminders, escalated in rows:
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
    """Record planned messages as pending, in one transaction (all or none)."""
    if not records:
        return
    with store.transaction():
        store.lock("notify")
        for rec in records:
            values = {
                "notification_id": rec.notification_id,
                "run_id": rec.run_id,
                "scan_id": rec.scan_id,
                "kind": rec.kind,
                "state": "pending",
                "recipients": list(rec.recipients),
                "cc": list(rec.cc),
                "contact_key": rec.contact_key,
                "organisation": rec.organisation,
                "sector": rec.sector,
                "country": rec.country,
                "language": rec.language,
                "contact_source": rec.contact_source,
                "contact_reason": rec.contact_reason,
                "subject": rec.subject,
                "message_id": rec.message_id,
                "hosts": list(rec.hosts),
                "host_count": len(rec.hosts),
                "finding_count": len(rec.findings),
                "findings": json.dumps(rec.findings),
                "created_at": at,
                "sent_at": None,
                "attempts": 0,
                "last_error": None,
                "smtp_reply": None,
                # The raw message is 7-bit ASCII (encoded headers, quoted-printable, base64).
                "message": rec.raw.decode("ascii"),
            }
            store.execute(
                f"INSERT INTO notifications ({', '.join(_NOTIFICATION_COLUMNS)}) VALUES"
                f" ({', '.join('?' for _ in _NOTIFICATION_COLUMNS)})",
                [values[c] for c in _NOTIFICATION_COLUMNS],
            )
            for item in rec.items:
                row = {
                    "notification_id": rec.notification_id,
                    "case_id": item.case_id,
                    "ip": item.ip,
                    "port": item.port,
                    "finding": item.finding,
                    "role": item.role,
                    "organisation": item.organisation,
                    "sector": item.sector,
                    "country": item.country,
                    "seen_at": item.seen_at,
                }
                store.execute(
                    f"INSERT INTO notification_items ({', '.join(_ITEM_COLUMNS)}) VALUES"
                    f" ({', '.join('?' for _ in _ITEM_COLUMNS)})",
                    [row[c] for c in _ITEM_COLUMNS],
                )


def mark_sent(store: Store, notification_id: str, reply: str, at: datetime) -> bool:
    """The server accepted the message: record it and open or advance its cases.  False
    when it was already recorded as sent (nothing changes then)."""
    with store.transaction():
        changed = store.modify(
            "UPDATE notifications SET state = 'sent', sent_at = ?, smtp_reply = ?,"
            " attempts = coalesce(attempts, 0) + 1, last_error = NULL"
            " WHERE notification_id = ? AND state = 'pending'",
            [at, reply[:500], notification_id],
        )
        if not changed:
            return False
        head = store.query(
            "SELECT scan_id, contact_key FROM notifications WHERE notification_id = ?",
            [notification_id],
        )
        scan_id, contact_key = head[0]
        items = store.query(
            "SELECT case_id, ip, port, finding, role, organisation, sector, country, seen_at"
            " FROM notification_items WHERE notification_id = ?",
            [notification_id],
        )
        for case_id, ip, port, finding, role, organisation, sector, country, seen in items:
            if role == "new":
                store.execute(
                    "INSERT INTO notify_cases (case_id, ip, port, finding, state, organisation,"
                    " sector, country, contact_key, opened_scan, opened_at, first_notification,"
                    " last_sent_at, last_notification, reminders, last_seen_scan, last_seen_at,"
                    " seen_after) SELECT ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 0"
                    " WHERE NOT EXISTS (SELECT 1 FROM notify_cases WHERE ip = ? AND port = ?"
                    " AND finding = ? AND state = 'open')",
                    [
                        case_id, ip, port, finding, organisation, sector, country, contact_key,
                        scan_id, at, notification_id, at, notification_id, scan_id, seen,
                        ip, port, finding,
                    ],
                )  # fmt: skip
            elif role == "reminder":
                store.execute(
                    "UPDATE notify_cases SET reminders = coalesce(reminders, 0) + 1,"
                    " last_sent_at = ?, last_notification = ?, contact_key = ?"
                    " WHERE case_id = ?",
                    [at, notification_id, contact_key, case_id],
                )
            else:
                store.execute(
                    "UPDATE notify_cases SET escalated_at = ?, last_sent_at = ?,"
                    " last_notification = ?, contact_key = ? WHERE case_id = ?",
                    [at, at, notification_id, contact_key, case_id],
                )
    return True


def mark_failed(
    store: Store, notification_id: str, error: str, *, permanent: bool, at: datetime
) -> None:
    """A refusal: permanent ones end the message (`failed`, its findings are planned again
    next run); temporary ones leave it pending for the next run."""
    store.execute(
        "UPDATE notifications SET state = ?, attempts = coalesce(attempts, 0) + 1,"
        " last_error = ?, sent_at = CASE WHEN ? THEN ? ELSE sent_at END"
        " WHERE notification_id = ? AND state = 'pending'",
        ["failed" if permanent else "pending", error[:500], permanent, at, notification_id],
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
    "in_flight",
    "mark_failed",
    "mark_sent",
    "open_cases",
    "pending_messages",
    "record_pending",
    "release",
    "usable",
]
