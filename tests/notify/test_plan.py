"""The planning rules as a pure function, message building on synthetic hosts, and escaping."""

from __future__ import annotations

import csv
import email
import email.policy
import io
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from exwatch.notify.contacts import Contact, HostKeys, Resolution
from exwatch.notify.escaping import header_value, text_value
from exwatch.notify.hosts import Host
from exwatch.notify.message import build_message
from exwatch.notify.plan import Entry, Item, OpenCase, Planned, Policy, plan
from exwatch.notify.render import MAX_HOSTS_SHOWN, Sender, Templates

NOW = datetime(2026, 3, 20, 9, tzinfo=UTC)
KEV = "CVE-2021-34473"  # ProxyShell, in CISA KEV
OTHER = "CVE-2023-21529"
PLAIN_CVE = "CVE-2020-0692"  # not in CISA KEV


def _host(ip: str, findings: tuple[str, ...] = (KEV,), org: str = "Org") -> Host:
    return Host(
        scan_id="s", ip=ip, port=443, seen_at=NOW - timedelta(days=1), hostname=None,
        certificate_name=None, country="BE", asn=None, organisation=org, sector="unknown",
        product="Exchange Server 2016", build="15.1.2176.9", cu="CU19", su="Mar21SU",
        precision="su", eol=True, vulnerable_cves=findings, compromise=None,
        keys=HostKeys(ip, None, (), (), {}),
    )  # fmt: skip


def _contact(*addresses: str, escalation: tuple[str, ...] = ()) -> Resolution:
    contact = Contact(tuple(addresses), "contacts", "test", "Org", "en", escalation=escalation)
    return Resolution(contact, "test")


def _case(ip: str, finding: str, days_ago: float, reminders: int = 0, key: str | None = None,
          escalated: bool = False) -> OpenCase:  # fmt: skip
    sent = NOW - timedelta(days=days_ago)
    return OpenCase(f"case-{ip}-{finding}", ip, 443, finding, key, sent - timedelta(days=1),
                    sent, reminders, sent if escalated else None)  # fmt: skip


def test_each_finding_gets_the_role_its_case_calls_for() -> None:
    hosts = [
        (_host("192.0.2.1", (KEV, OTHER)), _contact("a@x.example")),
        (_host("192.0.2.2", (KEV,)), _contact("a@x.example")),
        (_host("192.0.2.3", (KEV,)), _contact("a@x.example")),
        (_host("192.0.2.4", (KEV,)), _contact("a@x.example")),
    ]
    cases = {
        ("192.0.2.1", 443, KEV): _case("192.0.2.1", KEV, 20, key="a@x.example"),  # reminder
        ("192.0.2.2", 443, KEV): _case("192.0.2.2", KEV, 3),  # not due
        ("192.0.2.3", 443, KEV): _case("192.0.2.3", KEV, 20, reminders=2),  # escalate
        ("192.0.2.4", 443, KEV): _case("192.0.2.4", KEV, 99, reminders=2, escalated=True),
    }
    result = plan(
        hosts, cases, {("192.0.2.1", 443, OTHER)}, NOW, Policy(escalate_cc=("e@cert.example",))
    )
    (message,) = result.messages
    roles = {(h.ip, i.finding): i.role for h, i in message.items}
    assert roles == {("192.0.2.1", KEV): "reminder", ("192.0.2.3", KEV): "escalation"}
    assert (result.not_due, result.in_flight, result.escalated) == (1, 1, 1)
    assert message.kind == "escalation"
    assert message.cc == ("e@cert.example",)


@pytest.mark.parametrize(
    ("open_key", "roles", "kind"),
    [
        (None, ("new",), "initial"),
        ("a@x.example", ("new",), "follow-up"),  # the contact has open cases elsewhere
        ("someone-else@x.example", ("new",), "initial"),  # the host changed hands
    ],
)
def test_new_findings_are_initial_or_follow_up(
    open_key: str | None, roles: tuple[str, ...], kind: str
) -> None:
    cases = {}
    if open_key is not None:
        cases[("198.51.100.9", 443, KEV)] = _case("198.51.100.9", KEV, 2, key=open_key)
    result = plan([(_host("192.0.2.1"), _contact("a@x.example"))], cases, set(), NOW, Policy())
    (message,) = result.messages
    assert tuple(i.role for _, i in message.items) == roles
    assert message.kind == kind


def test_hosts_of_one_contact_share_one_message_and_no_contact_is_listed() -> None:
    hosts = [
        (_host("192.0.2.1"), _contact("b@x.example", "a@x.example")),
        (_host("192.0.2.2"), _contact("a@x.example", "b@x.example")),
        (_host("192.0.2.3"), Resolution(None, "no contact in the constituency or contacts file")),
    ]
    result = plan(hosts, {}, set(), NOW, Policy())
    (message,) = result.messages
    assert [e.host.ip for e in message.entries] == ["192.0.2.1", "192.0.2.2"]
    (missing,) = result.no_contact
    assert (missing.host.ip, missing.findings) == ("192.0.2.3", (KEV,))


def test_limits_keep_the_most_urgent_and_spread_over_domains() -> None:
    hosts = [
        (_host("192.0.2.1", (PLAIN_CVE,)), _contact("a@big.example")),
        (_host("192.0.2.2", (KEV, OTHER)), _contact("b@big.example")),
        (_host("192.0.2.3", (KEV,)), _contact("c@big.example")),
        (_host("192.0.2.4", (PLAIN_CVE,)), _contact("d@small.example")),
    ]
    result = plan(hosts, {}, set(), NOW, Policy(max_messages=3, max_per_domain=2))
    assert [m.contact.addresses[0] for m in result.messages] == [
        "b@big.example", "c@big.example", "d@small.example",
    ]  # fmt: skip
    ((deferred, why),) = result.deferred
    assert deferred.contact.addresses == ("a@big.example",)
    assert why == "over --max-per-domain 2 for big.example"


def _built(count: int) -> EmailMessage:
    entries = [Entry(_host(f"192.0.2.{i}"), [Item(KEV, "new", None)]) for i in range(1, count + 1)]
    planned = Planned(Contact(("soc@hoster.example",), "contacts", "r", "Hoster", "en"),
                      "initial", entries)  # fmt: skip
    built = build_message(planned, notification_id="f" * 32, lang="en",
                          sender=Sender("CERT", "cert@cert.example"), templates=Templates(),
                          now=NOW)  # fmt: skip
    message = email.message_from_bytes(built.raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_hoster_with_many_hosts_gets_a_readable_body_and_the_full_csv() -> None:
    message = _built(MAX_HOSTS_SHOWN + 10)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.count("\n* 192.0.2.") == MAX_HOSTS_SHOWN
    assert "* and 10 more servers, listed in the attached CSV file." in text
    flat = " ".join(text.split())
    assert "60 servers that we attribute to your organisation are vulnerable" in flat
    (attachment,) = message.iter_attachments()
    rows = list(csv.DictReader(io.StringIO(attachment.get_content().lstrip("\ufeff"))))
    assert len(rows) == MAX_HOSTS_SHOWN + 10


@pytest.mark.parametrize(
    ("raw", "text", "header"),
    [
        ("plain", "plain", "plain"),
        ("a\r\nBcc: x@y.example", "a\\x0d\\x0aBcc: x@y.example", "a Bcc: x@y.example"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m", "[31mred [0m"),
        ("abc\u202edcba", "abc\\u202edcba", "abcdcba"),
        ("\x85next-line\u2028", "\\x85next-line\\u2028", "next-line"),
        ("x" * 301, "x" * 200 + "…", "x" * 299 + "…"),
        (None, "", ""),
    ],
)
def test_values_lose_controls_before_any_template_or_header(
    raw: str | None, text: str, header: str
) -> None:
    assert text_value(raw) == text
    assert header_value(raw) == header


def test_escalations_copy_the_contacts_own_escalation_addresses_once() -> None:
    resolution = _contact("a@x.example", escalation=("boss@x.example", "a@x.example"))
    cases = {("192.0.2.1", 443, KEV): _case("192.0.2.1", KEV, 20, reminders=2)}
    policy = Policy(escalate_cc=("cert-lead@cert.example", "boss@x.example"))
    (message,) = plan([(_host("192.0.2.1"), resolution)], cases, set(), NOW, policy).messages
    assert message.kind == "escalation"
    assert message.cc == ("boss@x.example", "cert-lead@cert.example")  # never the To again
    # A reminder is not copied to anyone.
    cases = {("192.0.2.1", 443, KEV): _case("192.0.2.1", KEV, 20, reminders=0)}
    (message,) = plan([(_host("192.0.2.1"), resolution)], cases, set(), NOW, policy).messages
    assert (message.kind, message.cc) == ("reminder", ())
