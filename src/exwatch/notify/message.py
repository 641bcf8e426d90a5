"""One notification as an RFC 5322 message: headers, text and HTML parts, a CSV of the hosts.

Structure: multipart/mixed [multipart/alternative [text/plain, text/html], text/csv].  Text
parts are UTF-8 in quoted-printable (any server takes them, 8BITMIME or not); header values
are made single-line first (escaping.header_value) and then encoded by the email package
(RFC 2047 for "Région de Bruxelles-Capitale"), whose SMTP policy also refuses any CR or LF
that would still reach a header.  Headers are generated unfolded (up to RFC 5322's 998
characters): Python's folder can drop the space between two encoded words when it folds a
line (an en dash and "Région" decode as one word), so every message is parsed back and
its Subject and addresses compared with what was meant before it may be sent.  The
Message-ID is fixed when the message is recorded, so a retry after a crash sends the very
same message and receivers can recognise it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from typing import Any

from exwatch.errors import DataError
from exwatch.notify.escaping import header_value, text_value
from exwatch.notify.hosts import COMPROMISE_FINDING
from exwatch.notify.plan import Planned
from exwatch.notify.remedy import cve_facts
from exwatch.notify.render import Sender, Templates, message_context
from exwatch.report.exports import neutralise

CSV_COLUMNS = (
    "ip", "port", "hostname", "product", "cu", "su", "build", "days_behind", "sus_behind",
    "cus_behind",
    "vulnerable_cves", "known_exploited", "install", "install_build", "compromise", "indicators",
    "seen_at", "reported_at", "status", "mitigated_cves",
)  # fmt: skip


# Bodies are encoded under the SMTP policy (quoted-printable and base64 lines of 76); headers
# are written without folding (see the module docstring).
_BODY_POLICY = policy.SMTP
_OUTPUT_POLICY = policy.SMTP.clone(max_line_length=998)


@dataclass(frozen=True, slots=True)
class Built:
    """A message ready to record and send."""

    notification_id: str
    message_id: str
    subject: str
    language: str
    recipients: tuple[str, ...]
    cc: tuple[str, ...]
    raw: bytes  # CRLF line ends, as handed to the SMTP server
    text: str
    html: str


def _address(addr_spec: str, display: str | None = None) -> Address:
    return Address(display_name=header_value(display or "", 120), addr_spec=addr_spec)


def hosts_csv(context: dict[str, Any]) -> str:
    """The attachment: one row per host, cells a spreadsheet will not run as formulas."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for h in context["all_hosts"]:
        action = h["action"] or {}
        compromise = h["compromise"] or {}
        indicators = "; ".join(
            f"{i['path'] or ''} {i['evidence'] or ''}".strip()
            for i in compromise.get("indicators", [])
        )
        reported = sorted({c["reported"] for c in h["all_cves"] if c["reported"]})
        row = [
            h["ip"], h["port"], h["hostname"], h["product"], h["cu"], h["su"], h["build"],
            (h["lag"] or {}).get("days_behind"), (h["lag"] or {}).get("sus_behind"),
            (h["lag"] or {}).get("cus_behind"),
            " ".join(c["id"] for c in h["all_cves"]),
            " ".join(c["id"] for c in h["all_cves"] if c["kev"]),
            " ".join(x for x in (action.get("product"), action.get("cu"), action.get("update_name"))
                     if x)
            if action.get("kind") != "upgrade"
            else f"upgrade to {action.get('upgrade_to') or 'a supported version'}",
            action.get("build"),
            compromise.get("state"),
            indicators,
            h["seen_at"],
            reported[0] if reported else None,
            "new" if h["new"] else "still open",
            " ".join(c["id"] for c in h["mitigated_cves"]),
        ]  # fmt: skip
        # Server values keep their text, minus controls; formulas are neutralised.
        writer.writerow([neutralise(text_value(v, 500)) if isinstance(v, str) else v for v in row])
    return "\ufeff" + out.getvalue()  # a BOM: spreadsheets then read UTF-8 names right


def build_message(
    planned: Planned,
    *,
    notification_id: str,
    lang: str,
    sender: Sender,
    templates: Templates,
    now: datetime,
    scan_started: datetime | None = None,
) -> Built:
    reference = notification_id[:12]
    context = message_context(
        planned, lang=lang, sender=sender, now=now, reference=reference, scan_started=scan_started
    )
    subject, text, html = templates.render(lang, context)
    subject = header_value(subject, 250)
    message_id = f"<exwatch.{notification_id}@{sender.domain}>"
    organisation = planned.contact.organisation
    msg = _compose(planned, sender, subject, text, html, context, now, message_id, lang,
                   header_value(organisation or "", 120))  # fmt: skip
    raw = msg.as_bytes(policy=_OUTPUT_POLICY)
    if not _round_trips(raw, msg):
        # A display name the generator could not keep intact: send without it.
        msg = _compose(planned, sender, subject, text, html, context, now, message_id, lang, "")
        raw = msg.as_bytes(policy=_OUTPUT_POLICY)
        if not _round_trips(raw, msg):
            raise DataError(f"message {message_id}: headers do not survive encoding")
    return Built(
        notification_id=notification_id,
        message_id=message_id,
        subject=subject,
        language=lang,
        recipients=planned.contact.addresses,
        cc=planned.cc,
        raw=raw,
        text=text,
        html=html,
    )


def _compose(
    planned: Planned,
    sender: Sender,
    subject: str,
    text: str,
    html: str,
    context: dict[str, Any],
    now: datetime,
    message_id: str,
    lang: str,
    display: str,
) -> EmailMessage:
    msg = EmailMessage(policy=_BODY_POLICY)
    msg["From"] = _address(sender.address, sender.name)
    msg["To"] = [_address(a, display) for a in planned.contact.addresses]
    if planned.cc:
        msg["Cc"] = [_address(a) for a in planned.cc]
    if sender.reply_to:
        msg["Reply-To"] = _address(sender.reply_to, sender.name)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    # Automated, not an autoresponse: out-of-office replies should stay away (RFC 3834).
    msg["Auto-Submitted"] = "auto-generated"
    opt_out = sender.opt_out or sender.reply_to or sender.address
    msg["List-Unsubscribe"] = f"<mailto:{opt_out}?subject=opt%20out>"
    msg["X-Exwatch-Reference"] = message_id[9:21]
    msg["X-Exwatch-Kind"] = planned.kind
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    msg.add_attachment(
        hosts_csv(context),
        subtype="csv",
        charset="utf-8",
        cte="base64",
        filename=f"exchange-servers-{now.date().isoformat()}.csv",
    )
    # After the parts: making a message multipart moves Content-* headers into its first part.
    msg["Content-Language"] = lang
    return msg


def _round_trips(raw: bytes, meant: EmailMessage) -> bool:
    """Whether the generated headers decode to exactly what was meant."""
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    back = BytesHeaderParser(policy=policy.default).parsebytes(head)
    for name in ("Subject", "From", "To", "Cc", "Reply-To"):
        if str(back.get(name, "")) != str(meant.get(name, "")):
            return False
    return all(len(line) <= 998 for line in raw.split(b"\r\n"))


def envelope(built: Built) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*built.recipients, *built.cc)))


def findings_json(planned: Planned) -> list[dict[str, Any]]:
    return [
        {
            "ip": host.ip,
            "port": host.port,
            "finding": item.finding,
            "role": item.role,
            "kev": item.finding != COMPROMISE_FINDING and cve_facts(item.finding).kev,
        }
        for host, item in planned.items
    ]


def host_labels(planned: Planned) -> list[str]:
    return [e.host.address for e in planned.entries]


__all__ = [
    "CSV_COLUMNS",
    "Built",
    "build_message",
    "envelope",
    "findings_json",
    "host_labels",
    "hosts_csv",
]
