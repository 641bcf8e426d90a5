"""Who gets which message this run: deduplication, reminders, escalation, rate limits (pure).

Every finding (a vulnerable CVE, or `compromise`) of every host is one of:

- new: no open case holds it -> listed in the contact's message as new;
- in flight: a message naming it is still pending (a crash or an unreachable server) -> the
  pending message is retried as it is, nothing new is planned for it;
- not due: its case got a message less than `remind_after` ago -> nothing;
- reminder: still present `remind_after` after the last message, fewer than
  `escalate_after` reminders sent -> listed as a reminder;
- escalation: still present after `escalate_after` reminders -> listed as an escalation
  (Cc to the escalation addresses); after that the CERT follows it up by hand.

One message per contact: the kind is `escalation` if any item escalates, else `initial`
for a contact without open cases, `follow-up` for new findings to a contact with open
cases, `reminder` when only reminders are due.  Messages beyond the per-run or
per-recipient-domain limits are deferred (planned again next run), most urgent first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from exwatch.notify.contacts import Contact, Resolution
from exwatch.notify.hosts import COMPROMISE_FINDING, Host
from exwatch.notify.remedy import cve_facts

Role = Literal["new", "reminder", "escalation"]
Kind = Literal["initial", "follow-up", "reminder", "escalation"]
KINDS: tuple[Kind, ...] = ("initial", "follow-up", "reminder", "escalation")
CaseKey = tuple[str, int, str]  # (ip, port, finding)


@dataclass(frozen=True, slots=True)
class Policy:
    remind_after: timedelta = timedelta(days=14)
    escalate_after: int = 2  # reminders sent before the next one escalates
    max_messages: int | None = 200  # per run; None: no limit
    max_per_domain: int | None = 25  # per recipient domain per run; None: no limit
    escalate_cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenCase:
    case_id: str
    ip: str
    port: int
    finding: str
    contact_key: str | None
    opened_at: datetime
    last_sent_at: datetime
    reminders: int
    escalated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Item:
    finding: str
    role: Role
    case_id: str | None  # None for a new finding (its case opens when the message is sent)
    opened_at: datetime | None = None
    reminders: int = 0


@dataclass
class Entry:
    host: Host
    items: list[Item] = field(default_factory=list)

    @property
    def roles(self) -> set[Role]:
        return {i.role for i in self.items}


@dataclass
class Planned:
    contact: Contact
    kind: Kind
    entries: list[Entry]
    cc: tuple[str, ...] = ()

    @property
    def recipient_domain(self) -> str:
        return sorted(self.contact.addresses)[0].rsplit("@", 1)[-1]

    @property
    def items(self) -> list[tuple[Host, Item]]:
        return [(e.host, i) for e in self.entries for i in e.items]

    def urgency(self) -> tuple[int, int, int, int]:
        """Sort key, most urgent first when negated: compromise, escalation, KEV, count."""
        findings = [i.finding for _, i in self.items]
        kev = sum(1 for f in findings if f != COMPROMISE_FINDING and cve_facts(f).kev)
        return (
            int(COMPROMISE_FINDING in findings),
            int(self.kind == "escalation"),
            kev,
            len(findings),
        )


@dataclass(frozen=True, slots=True)
class NoContact:
    host: Host
    reason: str
    findings: tuple[str, ...]


@dataclass
class PlanResult:
    messages: list[Planned] = field(default_factory=list)
    deferred: list[tuple[Planned, str]] = field(default_factory=list)
    no_contact: list[NoContact] = field(default_factory=list)
    not_due: int = 0  # findings reported less than remind_after ago
    in_flight: int = 0  # findings in a pending message
    escalated: int = 0  # findings past escalation, left to the CERT


def _role(case: OpenCase | None, now: datetime, policy: Policy) -> Role | str:
    if case is None:
        return "new"
    if case.escalated_at is not None:
        return "escalated"
    if now - case.last_sent_at < policy.remind_after:
        return "not-due"
    return "reminder" if case.reminders < policy.escalate_after else "escalation"


def plan(
    hosts: Sequence[tuple[Host, Resolution]],
    open_cases: Mapping[CaseKey, OpenCase],
    in_flight: Iterable[CaseKey],
    now: datetime,
    policy: Policy,
    notified: Iterable[str] | None = None,
) -> PlanResult:
    """`notified`: contacts with an open case anywhere (default: those of `open_cases`)."""
    result = PlanResult()
    flying = set(in_flight)
    notified = (
        {c.contact_key for c in open_cases.values() if c.contact_key}
        if notified is None
        else set(notified)
    )
    groups: dict[str, Planned] = {}
    for host, resolution in hosts:
        entry = Entry(host)
        for finding in host.findings:
            key = (host.ip, host.port, finding)
            if key in flying:
                result.in_flight += 1
                continue
            case = open_cases.get(key)
            role = _role(case, now, policy)
            if role == "not-due":
                result.not_due += 1
            elif role == "escalated":
                result.escalated += 1
            elif case is None:
                entry.items.append(Item(finding, "new", None))
            else:
                entry.items.append(
                    Item(finding, role, case.case_id, case.opened_at, case.reminders)  # type: ignore[arg-type]
                )
        if not entry.items:
            continue
        contact = resolution.contact
        if contact is None:
            result.no_contact.append(
                NoContact(host, resolution.reason, tuple(i.finding for i in entry.items))
            )
            continue
        planned = groups.get(contact.key)
        if planned is None:
            planned = groups[contact.key] = Planned(contact, "initial", [])
        planned.entries.append(entry)
    for planned in groups.values():
        roles = {i.role for _, i in planned.items}
        if "escalation" in roles:
            planned.kind = "escalation"
            extra = (*planned.contact.escalation, *policy.escalate_cc)
            planned.cc = tuple(
                a for a in dict.fromkeys(extra) if a not in planned.contact.addresses
            )
        elif "new" in roles:
            planned.kind = (
                "follow-up" if planned.contact.key in notified or "reminder" in roles else "initial"
            )
        else:
            planned.kind = "reminder"
    ordered = sorted(groups.values(), key=lambda p: (tuple(-x for x in p.urgency()), p.contact.key))
    per_domain: dict[str, int] = {}
    for planned in ordered:
        if policy.max_messages is not None and len(result.messages) >= policy.max_messages:
            result.deferred.append((planned, f"over --max-messages {policy.max_messages}"))
            continue
        domain = planned.recipient_domain
        if policy.max_per_domain is not None and per_domain.get(domain, 0) >= policy.max_per_domain:
            result.deferred.append(
                (planned, f"over --max-per-domain {policy.max_per_domain} for {domain}")
            )
            continue
        per_domain[domain] = per_domain.get(domain, 0) + 1
        result.messages.append(planned)
    return result


__all__ = [
    "KINDS",
    "CaseKey",
    "Entry",
    "Item",
    "Kind",
    "NoContact",
    "OpenCase",
    "PlanResult",
    "Planned",
    "Policy",
    "Role",
    "plan",
]
