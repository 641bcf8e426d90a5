"""One `exwatch notify` run: cases refreshed, contacts chosen, messages planned, written, sent.

    summary = run(store, options)

Dry run (the default): messages are written as .eml files with an index, for review; the
store records nothing about them (only case states follow the scans, as `report
--remediation` also does).  Send: pending messages of an earlier run go first, byte for
byte; then the new ones are recorded pending, handed to the server one by one, and marked
sent (see ledger.py for what a crash leaves).  Either way the output folder gets
`index.csv`/`index.json` (one line per message, deferred ones included), `no-contact.csv`
(every host with findings that no message carries, and why) and `messages/*.eml`.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exwatch.errors import StoreError, UsageError
from exwatch.net.smtp import MailServerError, Refused, SmtpSession, SmtpSettings
from exwatch.notify import cases, ledger
from exwatch.notify.contacts import Contact, ContactsFile, HostKeys, OptOut, Resolver
from exwatch.notify.escaping import text_value
from exwatch.notify.hosts import Compromise, Host, Indicator, Skipped, notifiable_hosts
from exwatch.notify.message import Built, build_message, envelope, findings_json, host_labels
from exwatch.notify.plan import Entry, Item, Planned, PlanResult, Policy, plan
from exwatch.notify.remedy import cve_facts
from exwatch.notify.render import Sender, Templates, message_context, pick_language
from exwatch.notify.securitytxt import FetchPolicy, SecurityTxtLookup
from exwatch.report.aggregate import resolve_scan
from exwatch.report.exports import neutralise
from exwatch.scan.host import DEFAULT_USER_AGENT
from exwatch.store import Store

INDEX_COLUMNS = (
    "file", "state", "kind", "to", "cc", "organisation", "language", "language_note",
    "contact_source", "contact_reason", "hosts", "findings", "known_exploited", "compromised",
    "subject", "message_id", "notification_id", "detail",
)  # fmt: skip
NO_CONTACT_COLUMNS = (
    "ip",
    "port",
    "hostname",
    "organisation",
    "sector",
    "country",
    "findings",
    "reason",
)
_SLUG = re.compile(r"[^a-z0-9]+")

Note = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Options:
    sender: Sender
    out_dir: Path
    now: datetime
    scan_id: str | None = None
    contacts: str | None = None
    opt_out: tuple[str, ...] = ()
    templates: str | None = None
    default_language: str = "en"
    policy: Policy = field(default_factory=Policy)
    security_txt: FetchPolicy | None = None
    security_txt_max_age: timedelta = timedelta(days=7)
    smtp: SmtpSettings | None = None  # None: dry run
    pause: float = 0.0  # seconds between two messages sent
    force: bool = False


@dataclass
class Outcome:
    """What a run did (the CLI prints it; tests read it)."""

    run_id: str
    scan_id: str
    mode: str
    out_dir: Path
    planned: int = 0
    written: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0  # left pending (server unreachable or temporary refusals)
    retried: int = 0  # pending messages of earlier runs handed over in this run
    deferred: int = 0
    no_contact: int = 0
    hosts: int = 0
    not_due: int = 0
    in_flight: int = 0
    escalated: int = 0
    closed: dict[str, int] = field(default_factory=dict)
    skipped: Skipped = field(default_factory=Skipped)
    kinds: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    security_txt: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None  # why sending stopped early
    notes: list[str] = field(default_factory=list)


def _slug(text: str | None, limit: int = 40) -> str:
    # "Université" -> "universite": file names stay ASCII and readable.
    folded = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    value = _SLUG.sub("-", folded.lower()).strip("-")
    return value[:limit].strip("-") or "contact"


def sample_context(sender: Sender) -> dict[str, Any]:
    """A message with one of everything, to try every template before a run."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    host = Host(
        scan_id="sample", ip="192.0.2.1", port=443, seen_at=now, hostname="mail.example.org",
        certificate_name="mail.example.org", country="BE", asn=64500, organisation="Example",
        sector="unknown", product="Exchange Server 2019", build="15.2.1118.7", cu="CU12",
        su=None, precision="su", eol=True, vulnerable_cves=("CVE-2021-26855",),
        compromise=Compromise("compromised", (Indicator("/aspnet_client/x.aspx", "x", "y"),)),
        keys=HostKeys("192.0.2.1", None, (), (), {}), mitigated_cves=("CVE-2022-41040",),
    )  # fmt: skip
    items = [Item("CVE-2021-26855", "new", None), Item("compromise", "reminder", "c", now, 1)]
    planned = Planned(
        Contact(("it@example.org",), "contacts", "sample", "Example", "en"), "initial",
        [Entry(host, items)],
    )  # fmt: skip
    return message_context(
        planned, lang="en", sender=sender, now=now, reference="sample", scan_started=now
    )


def _check_output(folder: Path, force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not force:
            raise UsageError(
                f"--out {folder} is not empty; choose another folder or add --force to replace"
                " its messages and index"
            )
        for name in ("index.csv", "index.json", "no-contact.csv"):
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / "messages", ignore_errors=True)
    (folder / "messages").mkdir(parents=True, exist_ok=True)


def _most_common(values: list[str | None]) -> str | None:
    found = Counter(v for v in values if v)
    return found.most_common(1)[0][0] if found else None


@dataclass
class _Prepared:
    planned: Planned
    built: Built
    language_note: str | None
    file: str
    record: ledger.Record


def _prepare(
    planned: Planned,
    index: int,
    *,
    run_id: str,
    scan_id: str,
    templates: Templates,
    options: Options,
) -> _Prepared:
    contact = planned.contact
    lang, lang_note = pick_language(
        contact.language, contact.languages, templates.languages, options.default_language
    )
    notification_id = uuid.uuid4().hex
    built = build_message(
        planned,
        notification_id=notification_id,
        lang=lang,
        sender=options.sender,
        templates=templates,
        now=options.now,
    )
    hosts = [e.host for e in planned.entries]
    organisation = contact.organisation or _most_common([h.organisation for h in hosts])
    items = tuple(
        ledger.ItemRow(
            # A new finding's case id: unique as the message id is, and cheap to make.
            case_id=item.case_id or f"{notification_id}-{number}",
            ip=host.ip,
            port=host.port,
            finding=item.finding,
            role=item.role,
            organisation=host.organisation or contact.organisation,
            sector=host.sector,
            country=host.country,
            seen_at=host.seen_at,
        )
        for number, (host, item) in enumerate(planned.items)
    )
    record = ledger.Record(
        notification_id=notification_id,
        run_id=run_id,
        scan_id=scan_id,
        kind=planned.kind,
        recipients=built.recipients,
        cc=built.cc,
        contact_key=contact.key,
        organisation=organisation,
        sector=_most_common([h.sector for h in hosts]),
        country=_most_common([h.country for h in hosts]),
        language=lang,
        contact_source=contact.source,
        contact_reason=contact.reason,
        subject=built.subject,
        message_id=built.message_id,
        hosts=tuple(host_labels(planned)),
        findings=findings_json(planned),
        raw=built.raw,
        items=items,
    )
    name = f"{index:04d}-{planned.kind}-{_slug(organisation or contact.addresses[0])}.eml"
    return _Prepared(planned, built, lang_note, f"messages/{name}", record)


def _index_row(prep: _Prepared, state: str, detail: str = "") -> dict[str, Any]:
    findings = [i.finding for _, i in prep.planned.items]
    return {
        "file": prep.file,
        "state": state,
        "kind": prep.planned.kind,
        "to": ";".join(prep.built.recipients),
        "cc": ";".join(prep.built.cc),
        "organisation": prep.record.organisation,
        "language": prep.built.language,
        "language_note": prep.language_note or "",
        "contact_source": prep.planned.contact.source,
        "contact_reason": prep.planned.contact.reason,
        "hosts": len(prep.planned.entries),
        "findings": len(findings),
        "known_exploited": sum(1 for f in findings if f != "compromise" and cve_facts(f).kev),
        "compromised": sum(1 for f in findings if f == "compromise"),
        "subject": prep.built.subject,
        "message_id": prep.built.message_id,
        "notification_id": prep.built.notification_id,
        "detail": detail,
    }


def _deferred_row(planned: Planned, reason: str) -> dict[str, Any]:
    findings = [i.finding for _, i in planned.items]
    return {
        "file": "",
        "state": "deferred",
        "kind": planned.kind,
        "to": ";".join(planned.contact.addresses),
        "cc": ";".join(planned.cc),
        "organisation": planned.contact.organisation,
        "language": "",
        "language_note": "",
        "contact_source": planned.contact.source,
        "contact_reason": planned.contact.reason,
        "hosts": len(planned.entries),
        "findings": len(findings),
        "known_exploited": sum(1 for f in findings if f != "compromise" and cve_facts(f).kev),
        "compromised": sum(1 for f in findings if f == "compromise"),
        "subject": "",
        "message_id": "",
        "notification_id": "",
        "detail": reason,
    }


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: neutralise(text_value(v, 1000)) if isinstance(v, str) else v
                    for k, v in row.items()
                }
            )


def _write_reports(
    folder: Path, index_rows: list[dict[str, Any]], result: PlanResult, outcome: Outcome
) -> None:
    _write_csv(folder / "index.csv", INDEX_COLUMNS, index_rows)
    no_contact = [
        {
            "ip": n.host.ip,
            "port": n.host.port,
            "hostname": n.host.hostname,
            "organisation": n.host.organisation,
            "sector": n.host.sector,
            "country": n.host.country,
            "findings": " ".join(n.findings),
            "reason": n.reason,
        }
        for n in result.no_contact
    ]
    _write_csv(folder / "no-contact.csv", NO_CONTACT_COLUMNS, no_contact)
    document = {
        "run_id": outcome.run_id,
        "scan_id": outcome.scan_id,
        "mode": outcome.mode,
        "messages": index_rows,
        "no_contact": no_contact,
        "counts": {
            "hosts": outcome.hosts,
            "planned": outcome.planned,
            "sent": outcome.sent,
            "failed": outcome.failed,
            "pending": outcome.pending,
            "deferred": outcome.deferred,
            "no_contact": outcome.no_contact,
            "not_due": outcome.not_due,
            "in_flight": outcome.in_flight,
            "escalated_before": outcome.escalated,
            "cases_closed": outcome.closed,
            "exchange_online_skipped": outcome.skipped.exchange_online,
            "suspect_skipped": outcome.skipped.suspect,
        },
        "security_txt": outcome.security_txt,
        "stopped": outcome.stopped,
    }
    (folder / "index.json").write_text(json.dumps(document, indent=2, default=str) + "\n", "utf-8")


def _send_pending(
    store: Store, session: SmtpSession, options: Options, outcome: Outcome, note: Note
) -> None:
    """Messages an earlier run recorded but did not see accepted: the same bytes again."""
    pending = ledger.pending_messages(store)
    if pending:
        note(f"{len(pending)} messages of an earlier run were not confirmed sent; sending them now")
    for message in pending:
        try:
            reply = session.send(
                options.sender.address, tuple(dict.fromkeys((*message.recipients, *message.cc))),
                message.raw,
            )  # fmt: skip
        except Refused as exc:
            ledger.mark_failed(
                store, message.notification_id, str(exc), permanent=exc.permanent, at=options.now
            )
            outcome.failed += int(exc.permanent)
            outcome.pending += int(not exc.permanent)
            continue
        ledger.mark_sent(store, message.notification_id, reply, options.now)
        outcome.retried += 1
        if options.pause:
            time.sleep(options.pause)


def run(store: Store, options: Options, note: Note | None = None) -> Outcome:
    say = note or (lambda _m: None)
    templates = Templates(options.templates)
    templates.check(sample_context(options.sender))
    if options.default_language not in templates.languages:
        raise UsageError(
            f"--language {options.default_language}: no templates for it"
            f" (have {', '.join(templates.languages)})"
        )
    contacts = ContactsFile.load(options.contacts) if options.contacts else None
    opt_out = OptOut.load(options.opt_out)
    sending = options.smtp is not None
    writable = not store.read_only and ledger.usable(store)
    if sending and not writable:
        raise StoreError(f"{store.location} is read-only: sending needs a writable store")
    scan_id = resolve_scan(store, options.scan_id)
    if options.sender.user_agent is None:
        # Name the User-Agent the scan really sent (scan parameters; the default when unset).
        recorded = store.scan_params(scan_id).get("user_agent")
        agent = recorded if isinstance(recorded, str) and recorded else DEFAULT_USER_AGENT
        options = replace(options, sender=replace(options.sender, user_agent=agent))
    run_id = uuid.uuid4().hex
    outcome = Outcome(run_id, scan_id, "send" if sending else "dry-run", options.out_dir)
    _check_output(options.out_dir, options.force)
    if writable:
        outcome.closed = cases.refresh(store).closed
    lookup = None
    if options.security_txt is not None:
        lookup = SecurityTxtLookup(
            options.security_txt,
            now=options.now,
            store=store if writable else None,
            max_age=options.security_txt_max_age,
        )
    resolver = Resolver(contacts, opt_out, lookup)
    locked = False
    session: SmtpSession | None = None
    index_rows: list[dict[str, Any]] = []
    result = PlanResult()
    try:
        if sending:
            taken = ledger.acquire(store, run_id, options.now)
            locked = True
            if taken:
                say(taken)
            assert options.smtp is not None
            session = SmtpSession(options.smtp)
            session.connect()
            _send_pending(store, session, options, outcome, say)
            ledger.apply_sent(store)
        hosts = list(notifiable_hosts(store, scan_id, outcome.skipped))
        outcome.hosts = len(hosts)
        resolved = [(h, resolver.resolve(h.keys)) for h in hosts]
        known = ledger.usable(store)
        open_cases = ledger.open_cases(store, scan_id) if known else {}
        flying = ledger.in_flight(store) if known else set()
        notified = ledger.notified_contacts(store) if known else set()
        result = plan(resolved, open_cases, flying, options.now, options.policy, notified)
        outcome.not_due, outcome.in_flight = result.not_due, result.in_flight
        outcome.escalated = result.escalated
        outcome.no_contact = len(result.no_contact)
        outcome.deferred = len(result.deferred)
        prepared = [
            _prepare(p, i, run_id=run_id, scan_id=scan_id, templates=templates, options=options)
            for i, p in enumerate(result.messages, 1)
        ]
        outcome.planned = len(prepared)
        for prep in prepared:
            (options.out_dir / prep.file).write_bytes(prep.built.raw)
            outcome.written += 1
            outcome.kinds[prep.planned.kind] += 1
            outcome.languages[prep.built.language] += 1
        if lookup is not None:
            outcome.security_txt = lookup.summary()
        if not sending:
            index_rows = [_index_row(p, "planned") for p in prepared]
        else:
            assert session is not None
            ledger.record_pending(store, [p.record for p in prepared], options.now)
            for number, prep in enumerate(prepared):
                if outcome.stopped is not None:
                    index_rows.append(_index_row(prep, "pending", outcome.stopped))
                    outcome.pending += 1
                    continue
                try:
                    reply = session.send(
                        options.sender.address, envelope(prep.built), prep.built.raw
                    )
                except Refused as exc:
                    ledger.mark_failed(
                        store, prep.built.notification_id, str(exc),
                        permanent=exc.permanent, at=options.now,
                    )  # fmt: skip
                    state = "failed" if exc.permanent else "pending"
                    outcome.failed += int(exc.permanent)
                    outcome.pending += int(not exc.permanent)
                    index_rows.append(_index_row(prep, state, str(exc)))
                    continue
                except MailServerError as exc:
                    outcome.stopped = str(exc)
                    outcome.pending += 1
                    index_rows.append(_index_row(prep, "pending", str(exc)))
                    continue
                ledger.mark_sent(store, prep.built.notification_id, reply, options.now)
                outcome.sent += 1
                index_rows.append(_index_row(prep, "sent", reply))
                if options.pause and number + 1 < len(prepared):
                    time.sleep(options.pause)
    except MailServerError as exc:
        outcome.stopped = str(exc)
    finally:
        if session is not None:
            session.close()
        if locked:
            ledger.apply_sent(store)
            ledger.release(store, run_id)
    index_rows.extend(_deferred_row(p, reason) for p, reason in result.deferred)
    _write_reports(options.out_dir, index_rows, result, outcome)
    return outcome


__all__ = ["INDEX_COLUMNS", "NO_CONTACT_COLUMNS", "Options", "Outcome", "run", "sample_context"]
