"""Messages as text: the Jinja2 templates per language and the values they are given.

Templates live in the package (`notify/templates/<lang>/{subject.txt,body.txt,body.html}.j2`,
for nl, fr, de and en); a CERT overrides any of them, or adds a language, with a folder of
the same layout (`--templates DIR`).  Every template is rendered with StrictUndefined (a typo
is an error at start, when all of them are tried on a sample message, not at the 300th
message) and with a `finalize` that makes every printed value safe (escaping.finalize); the
HTML templates autoescape on top.

The context a template gets is built here from plain data (documented in docs/notify.md):
`kind`, `lang`, `sender`, `organisation`, `hosts` (each with its CVEs, advice, patch lag and
compromise state), `new_hosts`, `open_hosts`, `counts`, `scan`, `reference`, `opt_out`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
)

from exwatch.errors import DataError, UsageError
from exwatch.notify.escaping import finalize
from exwatch.notify.hosts import COMPROMISE_FINDING, COMPROMISED, Host
from exwatch.notify.plan import Item, Planned
from exwatch.notify.remedy import advice, cve_facts

PARTS = ("subject.txt.j2", "body.txt.j2", "body.html.j2")
MAX_CVES_SHOWN = 12  # known-exploited CVEs named per host at most
MIN_OTHERS_SHOWN = 5  # the worst other CVEs named when there are fewer known-exploited ones
MAX_HOSTS_SHOWN = 50  # hosts listed in a message body (a hoster may have hundreds; the CSV has all)
SHIPPED_LANGUAGES = ("de", "en", "fr", "nl")


@dataclass(frozen=True, slots=True)
class Sender:
    """Who the messages come from, and what they say about how the scan was made."""

    name: str  # the CERT's name, e.g. "CERT.be"
    address: str  # From
    reply_to: str | None = None
    website: str | None = None
    opt_out: str | None = None  # where to ask not to be told again (default: reply_to/From)
    scanner_addresses: tuple[str, ...] = ()  # the addresses the scans come from
    user_agent: str | None = None

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[-1]


class Templates:
    """The two Jinja2 environments (text and HTML) over the shipped and overriding folders."""

    def __init__(self, override: str | Path | None = None) -> None:
        loaders: list[Any] = []
        self.override = Path(override) if override is not None else None
        if self.override is not None:
            if not self.override.is_dir():
                raise UsageError(f"--templates {self.override}: not a folder")
            loaders.append(FileSystemLoader(str(self.override)))
        loaders.append(PackageLoader("exwatch.notify", "templates"))
        loader = ChoiceLoader(loaders)
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": StrictUndefined,
            "finalize": finalize,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "keep_trailing_newline": True,
        }
        self.text = Environment(autoescape=False, **common)  # noqa: S701 - plain text, see finalize
        self.html = Environment(autoescape=True, **common)
        self.languages = self._languages()

    def _languages(self) -> tuple[str, ...]:
        found = set(SHIPPED_LANGUAGES)
        if self.override is not None:
            for folder in self.override.iterdir():
                if folder.is_dir() and all((folder / part).is_file() for part in PARTS):
                    found.add(folder.name)
        return tuple(sorted(found))

    def render(self, lang: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
        """(subject, plain text, HTML) of one message."""
        try:
            subject = self.text.get_template(f"{lang}/subject.txt.j2").render(context)
            text = self.text.get_template(f"{lang}/body.txt.j2").render(context)
            html = self.html.get_template(f"{lang}/body.html.j2").render(context)
        except TemplateError as exc:
            where = getattr(exc, "filename", None) or f"{lang} templates"
            line = getattr(exc, "lineno", None)
            raise DataError(f"{where}{f':{line}' if line else ''}: {exc}") from None
        return subject, text, html

    def check(self, sample: Mapping[str, Any]) -> None:
        """Render every language with a sample context: a broken override fails at start."""
        for lang in self.languages:
            for kind in ("initial", "follow-up", "reminder", "escalation"):
                self.render(lang, {**sample, "kind": kind, "lang": lang})


def shipped_template(lang: str, part: str) -> str:
    return (files("exwatch.notify") / "templates" / lang / part).read_text(encoding="utf-8")


def pick_language(
    wanted: str | None, preferred: Sequence[str], available: Sequence[str], default: str
) -> tuple[str, str | None]:
    """(language, note) for a contact: its own language, else its security.txt
    Preferred-Languages, else the default; `fr-BE` uses `fr`.  The note says why a wish
    could not be followed."""
    tried = [w for w in (wanted, *preferred) if w]
    for tag in tried:
        base = tag.replace("_", "-").split("-", 1)[0].lower()
        if tag.lower() in available:
            return tag.lower(), None
        if base in available:
            return base, None
    if tried:
        return default, f"no template for {', '.join(tried)}; sent in {default}"
    return default, None


def _ip_key(ip: str) -> tuple[int, int]:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return (9, 0)
    return (addr.version, int(addr))


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    return value.date().isoformat() if isinstance(value, datetime) else value.isoformat()


def host_view(host: Host, items: Sequence[Item], on: date) -> dict[str, Any]:
    """What a template shows about one host: plain values only (strings, numbers, lists)."""
    found = advice(host.build, on)
    roles = {i.finding: i for i in items}
    cves: list[dict[str, Any]] = []
    for finding in host.findings:
        item = roles.get(finding)
        if finding == COMPROMISE_FINDING or item is None:
            continue
        facts = cve_facts(finding)
        cves.append(
            {
                "id": facts.id,
                "name": facts.name,
                "cvss": facts.cvss,
                "severity": facts.severity,
                "kev": facts.kev,
                "pre_auth": facts.pre_auth,
                "url": facts.url,
                "role": item.role,
                "reported": _iso(item.opened_at),
                "reminders": item.reminders,
            }
        )
    cves.sort(key=lambda c: (not c["kev"], c["role"] != "new", -(c["cvss"] or 0.0), c["id"]))
    # An old build can carry 100 CVEs: the message names the known-exploited ones and the
    # worst others; the CSV attachment lists them all.
    shown = [c for c in cves if c["kev"]][:MAX_CVES_SHOWN]
    shown += [c for c in cves if not c["kev"]][: max(0, MIN_OTHERS_SHOWN - len(shown))]
    action = found.action
    compromise = host.compromise
    compromise_item = roles.get(COMPROMISE_FINDING)
    return {
        "ip": host.ip,
        "port": host.port,
        "address": host.address,
        "hostname": host.hostname,
        "certificate_name": host.certificate_name,
        "product": host.product,
        "build": host.build,
        "cu": host.cu,
        "su": host.su,
        "eol": bool(host.eol),
        "seen_at": _iso(host.seen_at),
        "seen_at_time": host.seen_at.strftime("%Y-%m-%d %H:%M UTC"),
        "lag": None
        if found.lag is None
        else {
            "exact": found.lag.exact,
            "days_behind": found.lag.days_behind,
            "sus_behind": found.lag.sus_behind,
            "cus_behind": found.lag.cus_behind,
            "build_date": _iso(found.lag.build_date),
        },
        "action": None
        if action is None
        else {
            "kind": action.kind,
            "product": action.product,
            "update_name": action.update,
            "cu": action.cu,
            "build": action.build,
            "upgrade_to": action.upgrade_to,
            "extended_only": action.extended_only,
            "end_of_support": _iso(action.end_of_support),
            "page": action.page,
            "lifecycle_page": action.lifecycle_page,
        },
        "cves": shown,
        "all_cves": cves,
        "mitigated_cves": [
            {"id": f.id, "name": f.name, "kev": f.kev, "url": f.url}
            for f in map(cve_facts, host.mitigated_cves)
        ],
        "cve_count": len(cves),
        "more_cves": len(cves) - len(shown),
        "kev_count": sum(1 for c in cves if c["kev"]),
        "compromise": None
        if compromise is None
        else {
            "state": compromise.state,
            "indicators": [
                {"path": i.path, "evidence": i.evidence, "rule": i.rule}
                for i in compromise.indicators
            ],
            "checked_at": compromise.checked_at,
            "role": compromise_item.role if compromise_item is not None else None,
            "reported": _iso(compromise_item.opened_at) if compromise_item is not None else None,
        },
        "compromised": compromise is not None and compromise.state == COMPROMISED,
        "roles": sorted({i.role for i in items}),
        "new": any(i.role == "new" for i in items),
    }


def message_context(
    planned: Planned,
    *,
    lang: str,
    sender: Sender,
    now: datetime,
    reference: str,
    scan_started: datetime | None,
) -> dict[str, Any]:
    on = now.date()
    hosts = [host_view(e.host, e.items, on) for e in planned.entries]
    hosts.sort(key=lambda h: (not h["compromised"], -h["kev_count"], _ip_key(h["ip"]), h["port"]))
    shown = hosts[:MAX_HOSTS_SHOWN]
    reported = [
        i.opened_at for _, i in planned.items if i.role != "new" and i.opened_at is not None
    ]
    reminders = [i.reminders for _, i in planned.items if i.role == "reminder"]
    seen = [e.host.seen_at for e in planned.entries]
    contact = planned.contact
    return {
        "kind": planned.kind,
        "lang": lang,
        "sender": {
            "name": sender.name,
            "address": sender.address,
            "reply_to": sender.reply_to or sender.address,
            "website": sender.website,
        },
        "organisation": contact.organisation,
        "contact_reason": contact.reason,
        "hosts": shown,
        "new_hosts": [h for h in shown if h["new"]],
        "open_hosts": [h for h in shown if not h["new"]],
        "all_hosts": hosts,
        "more_hosts": len(hosts) - len(shown),
        "counts": {
            "hosts": len(hosts),
            "cves": len({c["id"] for h in hosts for c in h["all_cves"]}),
            "kev": sum(1 for h in hosts if h["kev_count"]),
            "compromised": sum(1 for h in hosts if h["compromised"]),
        },
        "compromised": any(h["compromised"] for h in hosts),
        "first_reported": _iso(min(reported)) if reported else None,
        "reminder_number": (max(reminders) + 1) if reminders else None,
        "scan": {
            "date": _iso(min(seen)) if seen else _iso(scan_started),
            "last_date": _iso(max(seen)) if seen else None,
            "addresses": list(sender.scanner_addresses),
            "user_agent": sender.user_agent,
        },
        "reference": reference,
        "opt_out": sender.opt_out or sender.reply_to or sender.address,
        "date": on.isoformat(),
    }


__all__ = [
    "PARTS",
    "SHIPPED_LANGUAGES",
    "Sender",
    "Templates",
    "host_view",
    "message_context",
    "pick_language",
    "shipped_template",
]
