"""security.txt (RFC 9116): read right, fetched under the scanner's rules (loopback sites only,
refused without --allow-private, the exclusion list honoured, certificates verified,
redirects kept on the domain), cached in the store, used for contacts and languages."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exwatch.notify.securitytxt import FetchPolicy, fetch, parse, parse_connect_to
from exwatch.scan.exclusions import Exclusions
from tests.notify.pki import TestCA
from tests.notify.records import OLD, exchange, store_with
from tests.notify.runs import messages, notify, text_of
from tests.notify.sites import https_site

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
URL = "https://org.example/.well-known/security.txt"
GOOD = b"""# Our security contacts
Contact: mailto:security@org.example
Contact: https://org.example/report
Contact: mailto:csirt%40org.example?subject=report
Expires: 2027-01-01T00:00:00.000Z
Preferred-Languages: fr, en
Canonical: https://org.example/.well-known/security.txt
"""
PLAIN = {"Content-Type": "text/plain; charset=utf-8"}


def test_a_file_is_read_as_rfc_9116_says() -> None:
    found = parse(GOOD.decode(), domain="org.example", url=URL, now=NOW)
    assert found.status == "found"
    assert found.emails == ("security@org.example", "csirt@org.example")
    assert found.languages == ("fr", "en")
    assert found.expires == datetime(2027, 1, 1, tzinfo=UTC)
    assert found.detail == ""
    contact = found.contact()
    assert contact is not None
    assert contact.source == "security.txt"
    assert contact.reason == f"security.txt of org.example ({URL})"


def test_a_signed_file_is_read_inside_its_armour() -> None:
    signed = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        "Contact: mailto:security@org.example\n- Expires: 2027-01-01T00:00:00Z\n"
        "-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n-----END PGP SIGNATURE-----\n"
    )
    found = parse(signed, domain="org.example", url=URL, now=NOW)
    assert (found.status, found.emails) == ("found", ("security@org.example",))
    assert found.expires is not None


@pytest.mark.parametrize(
    ("text", "status", "detail"),
    [
        ("Contact: mailto:a@org.example\nExpires: 2025-01-01T00:00:00Z\n", "expired",
         "expired on 2025-01-01"),
        ("Expires: 2027-01-01T00:00:00Z\nPolicy: https://org.example/p\n", "invalid",
         "no Contact field"),
        ("Contact: mailto:a@org.example\n", "found", "no Expires field (RFC 9116 requires one)"),
        ("Contact: https://org.example/form\nExpires: 2027-01-01T00:00:00Z\n", "found",
         "no mailto: Contact (web form or phone only)"),
        ("Contact: mailto:a@org.example\nExpires: 2027-01-01T00:00:00Z\n"
         "Canonical: https://other.example/.well-known/security.txt\n", "found",
         "Canonical names https://other.example/.well-known/security.txt, not " + URL),
        ("Contact: mailto:a@org.example\r\nBcc: x@y.example\nExpires: soon\n", "found",
         "Expires is not a date"),
    ],
)  # fmt: skip
def test_what_makes_a_file_unusable_is_said(text: str, status: str, detail: str) -> None:
    found = parse(text, domain="org.example", url=URL, now=NOW)
    assert (found.status, found.detail) == (status, detail)
    if status != "found":
        assert found.contact() is None


def _policy(site_port: int, tmp: Path, ca: TestCA, **kw: object) -> FetchPolicy:
    values: dict[str, object] = {
        "exclusions": Exclusions.none(),
        "allow_private": True,
        "user_agent": "exwatch-test (contact cert@cert.example)",
        "cafile": str(ca.cert),
        "connect_to": {
            "org.example": ("127.0.0.1", site_port),
            "www.org.example": ("127.0.0.1", site_port),
        },
        "timeout": 5.0,
    }
    values.update(kw)
    return FetchPolicy(**values)  # type: ignore[arg-type]


def test_fetched_from_the_site_with_the_scanners_user_agent(
    tmp_path: Path, test_ca: TestCA
) -> None:
    routes = {("org.example", "/.well-known/security.txt"): (200, PLAIN, GOOD)}
    with https_site(test_ca, ["org.example"], routes) as site:
        found = asyncio.run(fetch("org.example", _policy(site.port, tmp_path, test_ca), NOW))
    assert (found.status, found.url) == ("found", URL)
    assert site.requests == [
        ("org.example", "/.well-known/security.txt", "exwatch-test (contact cert@cert.example)")
    ]


def test_loopback_is_refused_unless_allowed_and_exclusions_always_win(
    tmp_path: Path, test_ca: TestCA
) -> None:
    routes = {("org.example", "/.well-known/security.txt"): (200, PLAIN, GOOD)}
    with https_site(test_ca, ["org.example"], routes) as site:
        found = asyncio.run(
            fetch("org.example", _policy(site.port, tmp_path, test_ca, allow_private=False), NOW)
        )
        assert found.status == "refused"
        assert "private or reserved range (--allow-private overrides)" in found.detail
        excluded = Exclusions.parse(["127.0.0.0/8  # never"], "blocklist.txt")
        found = asyncio.run(
            fetch("org.example", _policy(site.port, tmp_path, test_ca, exclusions=excluded), NOW)
        )
        assert (found.status, found.detail) == ("refused", "127.0.0.1 is in the exclusion list")
        assert site.requests == []  # not a single packet of HTTP


def test_the_certificate_must_be_the_sites(tmp_path: Path, test_ca: TestCA) -> None:
    routes = {("org.example", "/.well-known/security.txt"): (200, PLAIN, GOOD)}
    with https_site(test_ca, ["impostor.example"], routes) as site:
        found = asyncio.run(fetch("org.example", _policy(site.port, tmp_path, test_ca), NOW))
    assert found.status == "error"
    assert "tls-error" in found.detail
    assert found.contact() is None


def test_soft_404s_redirects_and_the_legacy_path(tmp_path: Path, test_ca: TestCA) -> None:
    html = {"Content-Type": "text/html"}
    cases = {
        "html": ({("org.example", "/.well-known/security.txt"): (200, html, b"<html>")},
                 "invalid", "served as text/html, not text/plain"),
        "legacy": ({("org.example", "/security.txt"): (200, PLAIN, GOOD)}, "found",
                   f"Canonical names {URL}, not https://org.example/security.txt"),
        "offsite": ({("org.example", "/.well-known/security.txt"):
                     (301, {"Location": "https://evil.example/security.txt"}, b"")},
                    "invalid", "redirect to 'https://evil.example/security.txt' is not https on"
                    " org.example"),
        "onsite": ({("org.example", "/.well-known/security.txt"):
                    (302, {"Location": "https://www.org.example/sec.txt"}, b""),
                    ("www.org.example", "/sec.txt"): (200, PLAIN, GOOD)}, "found",
                   f"Canonical names {URL}, not https://www.org.example/sec.txt"),
        "absent": ({}, "absent", "https://org.example/.well-known/security.txt: HTTP 404;"
                   " https://org.example/security.txt: HTTP 404"),
    }  # fmt: skip
    for name, (routes, status, detail) in cases.items():
        with https_site(test_ca, ["org.example", "www.org.example"], routes) as site:
            found = asyncio.run(fetch("org.example", _policy(site.port, tmp_path, test_ca), NOW))
        assert (found.status, found.detail) == (status, detail), name
    assert found.url is None


def test_connect_to_is_checked() -> None:
    assert parse_connect_to(["Org.Example.=127.0.0.1:8443", "v6.example=[::1]:443"]) == {
        "org.example": ("127.0.0.1", 8443),
        "v6.example": ("::1", 443),
    }
    for bad in ("org.example", "org.example=127.0.0.1", "org.example=host:443", "x=1.2.3.4:0"):
        with pytest.raises(ValueError, match="NAME=ADDRESS:PORT"):
            parse_connect_to([bad])


def test_notify_writes_to_the_security_txt_contact_in_its_language(
    tmp_path: Path, request: pytest.FixtureRequest, test_ca: TestCA
) -> None:
    scans = {
        "census": [
            # In the constituency without a contact; scanned by name, so org.example is ours.
            exchange("census", "193.190.50.1", "2026-03-01", OLD, hostname="mail.org.example"),
            # A certificate naming org.example is not enough to ask its security.txt.
            exchange("census", "193.190.50.2", "2026-03-01", OLD, cert="mail.org.example"),
            exchange("census", "193.190.50.3", "2026-03-01", OLD, hostname="mx.nosec.example"),
        ]
    }
    db, const = store_with(tmp_path, "duckdb", request, scans)
    routes = {("org.example", "/.well-known/security.txt"): (200, PLAIN, GOOD)}
    with https_site(test_ca, ["org.example", "nosec.example"], routes) as site:
        args = [
            "--security-txt", "--allow-private", "--security-txt-cafile", str(test_ca.cert),
            "--connect-to", f"org.example=127.0.0.1:{site.port}",
            "--connect-to", f"nosec.example=127.0.0.1:{site.port}",
        ]  # fmt: skip
        code, index = notify(db, tmp_path / "one", "2026-03-02T09:00:00Z", *args,
                             constituency=const)  # fmt: skip
        assert code == 0
        (message,) = messages(tmp_path / "one")
        assert [a.addr_spec for a in message["To"].addresses] == [
            "security@org.example", "csirt@org.example",
        ]  # fmt: skip
        assert message["Content-Language"] == "fr"  # Preferred-Languages: fr, en
        assert "193.190.50.1" in text_of(message)
        assert "193.190.50.2" not in text_of(message)
        assert index["messages"][0]["contact_source"] == "security.txt"
        no_contact = {
            r["ip"]: r["reason"]
            for r in csv.DictReader(io.StringIO((tmp_path / "one" / "no-contact.csv").read_text()))
        }
        assert no_contact["193.190.50.2"] == "no contact in the constituency or contacts file"
        assert no_contact["193.190.50.3"] == "no usable security.txt for nosec.example"
        assert index["security_txt"] == {"found": 1, "absent": 1}
        fetched = len(site.requests)
        # A second run within --security-txt-max-age asks the store, not the sites.
        code, _ = notify(db, tmp_path / "two", "2026-03-03T09:00:00Z", *args,
                         constituency=const)  # fmt: skip
        assert code == 0
        assert len(site.requests) == fetched
