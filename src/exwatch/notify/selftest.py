"""The message templates' self-test (`exwatch selftest`): every shipped language and kind of
message is rendered, as a whole message with its CSV, around a host whose server-supplied
strings are hostile, and checked for what must never reach a recipient: a header a server
wrote, markup or script in the HTML part, terminal or direction controls in the text, a
spreadsheet formula in the CSV.  A template that fails to render fails here, not at the
first notify run."""

from __future__ import annotations

import csv
import email
import email.policy
import io
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from exwatch.notify.contacts import Contact, HostKeys
from exwatch.notify.hosts import Compromise, Host, Indicator
from exwatch.notify.message import Built, build_message
from exwatch.notify.plan import Entry, Item, Kind, Planned, Role
from exwatch.notify.render import Sender, Templates
from exwatch.selftest import CheckResult

# What scanned servers and log lines put where a name should be.
HOSTILE_NAME = (
    "mail.\x1b[2J\x1b]8;;http://evil.example\x07x\r\nBcc: victim@example.org\u202e"
    "<img src=x onerror=alert(3)>"
)
HOSTILE_HTML = "<script>alert(1)</script><img src=x onerror=alert(2)>"
HOSTILE_FORMULA = '=HYPERLINK("http://evil.example","x")'
KINDS: tuple[Kind, ...] = ("initial", "follow-up", "reminder", "escalation")
_ROLE: dict[str, Role] = {
    "initial": "new", "follow-up": "new", "reminder": "reminder", "escalation": "escalation",
}  # fmt: skip
_HEADERS = {
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "Content-Language", "Auto-Submitted",
    "List-Unsubscribe", "X-Exwatch-Reference", "X-Exwatch-Kind", "MIME-Version", "Content-Type",
    "Reply-To",
}  # fmt: skip
_CONTROLS = ("\x1b", "\x07", "\u202e", "\r")


def hostile_message(kind: Kind) -> Planned:
    """One message of `kind` about a host whose every server string is hostile."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    host = Host(
        scan_id="selftest", ip="192.0.2.7", port=443, seen_at=now, hostname=HOSTILE_NAME,
        certificate_name=HOSTILE_FORMULA, country="BE", asn=64500,
        organisation=HOSTILE_HTML, sector="unknown", product="Exchange Server 2016",
        build="15.1.2507.6", cu="CU23", su=None, precision="su", eol=True,
        vulnerable_cves=("CVE-2021-26855", "CVE-2021-34473"),
        compromise=Compromise(
            "compromised", (Indicator(f"/owa/auth/{HOSTILE_HTML}.aspx", HOSTILE_NAME, "x"),)
        ),
        keys=HostKeys("192.0.2.7", None, (), (), {}), mitigated_cves=("CVE-2022-41040",),
    )  # fmt: skip
    role = _ROLE[kind]
    opened = None if role == "new" else now
    items = [
        Item("CVE-2021-26855", role, None if opened is None else "a", opened),
        Item("CVE-2021-34473", role, None if opened is None else "b", opened),
        Item("compromise", role, None if opened is None else "c", opened),
    ]
    contact = Contact(("it@example.org",), "contacts", "selftest", HOSTILE_NAME, None)
    return Planned(contact, kind, [Entry(host, items)])


def _problems(built: Built, where: str) -> list[str]:
    found: list[str] = []
    msg = email.message_from_bytes(built.raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    extra = set(msg.keys()) - _HEADERS
    if extra:
        found.append(f"{where}: headers a server wrote: {sorted(extra)}")
    for key, value in msg.items():
        if any(c in str(value) for c in ("\r", "\n", "\x1b")):
            found.append(f"{where}: control characters in {key}")
    if any(c in built.text for c in _CONTROLS):
        found.append(f"{where}: terminal or direction controls in the text part")
    if "<script" in built.html or "<img" in built.html:  # the templates have neither
        found.append(f"{where}: server markup in the HTML part")
    attachments = list(msg.iter_attachments())
    if len(attachments) != 1:
        found.append(f"{where}: {len(attachments)} attachments instead of the CSV")
    else:
        rows = csv.reader(io.StringIO(str(attachments[0].get_content()).lstrip("\ufeff")))
        if any(cell.startswith(("=", "+", "@")) for row in rows for cell in row):
            found.append(f"{where}: a CSV cell a spreadsheet would run as a formula")
    return found


def selftest(override: str | Path | None = None) -> CheckResult:
    """The shipped templates, or those of an overriding folder (`notify --templates`)."""
    result = CheckResult("notify templates" + (f" ({override})" if override else ""))
    templates = Templates(override)
    sender = Sender("CERT", "cert@example.org")
    now = datetime(2026, 1, 2, tzinfo=UTC)
    for lang in templates.languages:
        for kind in KINDS:
            where = f"{lang}/{kind}"
            result.examples += 1
            try:
                built = build_message(
                    hostile_message(kind), notification_id=f"selftest{lang}{kind}",
                    lang=lang, sender=sender, templates=templates, now=now,
                )  # fmt: skip
            except Exception as exc:  # any failure to render is the finding
                result.problems.append(f"{where}: does not render: {type(exc).__name__}: {exc}")
                continue
            result.problems.extend(_problems(built, where))
    return result


__all__ = ["HOSTILE_FORMULA", "HOSTILE_HTML", "HOSTILE_NAME", "hostile_message", "selftest"]
