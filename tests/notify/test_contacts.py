"""Contacts file, opt-out list and the rule that picks one contact per host (most specific)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exwatch.errors import DataError
from exwatch.notify.contacts import (
    Contact,
    ContactsFile,
    HostKeys,
    OptOut,
    Resolver,
    parse_address,
    parse_contacts,
)

BOOK = """# the CERT's own contacts
match,addresses,organisation,language,escalation,domain
193.190.10.0/24,ict@rode.example;ciso@rode.example,Gemeente Sint-Genesius-Rode,nl,\
burgemeester@rode.example,rode.example
193.190.0.0/16,noc@belnet.example,Belnet,en,,
193.190.20.128/25,csirt@bruxelles.example,Région de Bruxelles-Capitale,fr-BE,,
hoster.example,abuse@hoster.example,Hoster,en,,
AS64500,abuse@as64500.example,AS 64500 operator,en,,
"""


def _answer(matched_by: str, value: str, contact: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "organisation": "From constituency",
        "contact": contact,
        "language": "nl",
        "attribution": {
            "matched_by": matched_by,
            "value": value,
            "rule": "constituency:7",
            "source": "be.csv (9 entries, sha256 x)",
            **extra,
        },
    }


def _host(
    ip: str,
    answer: dict[str, Any] | None = None,
    names: tuple[str, ...] = (),
    asn: int | None = None,
    trusted: tuple[str, ...] = (),
) -> HostKeys:
    return HostKeys(ip, asn, names, trusted, answer or {})


@pytest.fixture
def book(tmp_path: Path) -> ContactsFile:
    path = tmp_path / "contacts.csv"
    path.write_text(BOOK, encoding="utf-8")
    return ContactsFile.load(path)


def test_contacts_file_is_read_with_every_column(book: ContactsFile) -> None:
    entry = book.by_ip("193.190.10.7")
    assert entry is not None
    assert entry.addresses == ("ict@rode.example", "ciso@rode.example")
    assert (entry.organisation, entry.language) == ("Gemeente Sint-Genesius-Rode", "nl")
    assert entry.escalation == ("burgemeester@rode.example",)
    assert entry.domain == "rode.example"
    assert book.by_ip("193.190.99.1").organisation == "Belnet"  # type: ignore[union-attr]
    assert book.by_domain("mail.hoster.example").match == "hoster.example"  # type: ignore[union-attr]
    assert book.by_asn(64500).organisation == "AS 64500 operator"  # type: ignore[union-attr]
    assert book.by_ip("8.8.8.8") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("match,addresses\n10.0.0.0/8,not-an-address\n", "is not an e-mail address"),
        ("match,addresses\n10.0.0.0/8,\n", "no address"),
        ("match,addresses,colour\n10.0.0.0/8,a@b.example,red\n", "unknown column"),
        ("match,organisation\n10.0.0.0/8,X\n", "missing column"),
        ("match,addresses\n10.0.0.1/8,a@b.example\n", "not a valid CIDR"),
        ("match,addresses\nAS1,a@b.example\nAS1,c@d.example\n", "already listed on line 2"),
        ("match,addresses,language\nAS1,a@b.example,français\n", "not a language tag"),
        ('match,addresses\nAS1,"a@b.example\nBcc: c@d.example"\n', "is not an e-mail address"),
        ("", "empty contacts file"),
    ],
)
def test_bad_contacts_files_are_refused_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as caught:
        parse_contacts(text, "contacts.csv")
    assert "contacts.csv" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("it@Rode.Example", "it@rode.example"),
        ("mailto:it@rode.example", "it@rode.example"),
        ("it@bücher.example", "it@xn--bcher-kva.example"),
        ("It <it@rode.example>", None),
        ("it@rode.example\r\nBcc: x@y.example", None),
        ('"quoted"@rode.example', None),
        ("it@localhost", None),
        ("it@192.0.2.1", None),
        ("a@b@c.example", None),
    ],
)
def test_addresses_are_plain_and_canonical(raw: str, expected: str | None) -> None:
    assert parse_address(raw) == expected


def test_longest_prefix_wins_and_the_contacts_file_breaks_ties(book: ContactsFile) -> None:
    resolver = Resolver(book)
    # constituency /16 vs contacts /24: the /24 wins.
    host = _host("193.190.10.7", _answer("cidr", "193.190.0.0/16", "it@const.example"))
    got = resolver.resolve(host)
    assert got.contact is not None
    assert got.contact.addresses == ("ict@rode.example", "ciso@rode.example")
    assert "network 193.190.10.0/24" in got.reason
    # constituency /28 vs contacts /24: the /28 wins, with its reason.
    host = _host("193.190.10.7", _answer("cidr", "193.190.10.0/28", "it@const.example"))
    got = resolver.resolve(host)
    assert got.contact is not None
    assert got.contact.addresses == ("it@const.example",)
    assert got.contact.source == "constituency"
    assert got.reason == "constituency be.csv (9 entries, sha256 x) line 7: network 193.190.10.0/28"
    # the same prefix on both: the contacts file (kept for notification) wins.
    host = _host("193.190.20.200", _answer("cidr", "193.190.20.128/25", "it@const.example"))
    assert resolver.resolve(host).contact.source == "contacts"  # type: ignore[union-attr]


def test_a_network_beats_a_domain_which_beats_the_operator(book: ContactsFile) -> None:
    resolver = Resolver(book)
    host = _host("198.51.100.7", names=("mail.hoster.example",), asn=64500)
    got = resolver.resolve(host)
    assert got.contact.addresses == ("abuse@hoster.example",)  # type: ignore[union-attr]
    assert "domain hoster.example (host name mail.hoster.example)" in got.reason
    got = resolver.resolve(_host("198.51.100.7", asn=64500))
    assert got.contact.addresses == ("abuse@as64500.example",)  # type: ignore[union-attr]
    assert "network operator" in got.reason
    # A constituency domain match (suffix of 2 labels) vs the contacts AS entry.
    answer = _answer("cert_san", "mail.gemeente.example", "it@gemeente.example",
                     suffix="gemeente.example")  # fmt: skip
    got = resolver.resolve(_host("198.51.100.7", answer, asn=64500))
    assert got.contact.addresses == ("it@gemeente.example",)  # type: ignore[union-attr]


def test_security_txt_sits_between_domains_and_operators(book: ContactsFile) -> None:
    asked: list[str] = []

    def lookup(domain: str) -> Contact | None:
        asked.append(domain)
        return Contact(("security@org.example",), "security.txt", f"security.txt of {domain}")

    resolver = Resolver(book, security_txt=lookup)
    # Only an AS entry matches: the organisation's own security.txt comes first.
    host = _host("198.51.100.7", asn=64500, trusted=("org.example",))
    got = resolver.resolve(host)
    assert got.contact.source == "security.txt"  # type: ignore[union-attr]
    assert asked == ["org.example"]
    # A network entry matches: security.txt is not even asked.
    asked.clear()
    got = resolver.resolve(_host("193.190.10.9", trusted=("org.example",)))
    assert got.contact.source == "contacts"  # type: ignore[union-attr]
    assert asked == []
    # No trusted domain: nothing to ask; the AS entry stays.
    got = resolver.resolve(_host("198.51.100.7", asn=64500, names=("mail.evil.example",)))
    assert got.contact.addresses == ("abuse@as64500.example",)  # type: ignore[union-attr]
    assert asked == []


def test_trusted_domains_never_come_from_what_a_server_claims(book: ContactsFile) -> None:
    resolver = Resolver(book)
    # A certificate name is matching evidence, not a domain to ask for security.txt ...
    host = _host("198.51.100.7", names=("mail.claimed.example",))
    assert resolver.trusted_domains(host) == []
    # ... but a matched contacts entry names its organisation's domain.
    assert resolver.trusted_domains(_host("193.190.10.1")) == ["rode.example"]
    assert resolver.trusted_domains(_host("198.51.100.7", names=("mx.hoster.example",))) == [
        "hoster.example"
    ]


def test_opt_out_drops_addresses_domains_networks_and_operators(
    book: ContactsFile, tmp_path: Path
) -> None:
    path = tmp_path / "optout.txt"
    path.write_text(
        "# asked us on 2026-02-01\nciso@rode.example\n@hoster.example  # the whole domain\n"
        "203.0.113.0/24\nAS64501\n",
        encoding="utf-8",
    )
    opt_out = OptOut.load([path])
    resolver = Resolver(book, opt_out)
    got = resolver.resolve(_host("193.190.10.7"))
    assert got.contact.addresses == ("ict@rode.example",)  # type: ignore[union-attr]
    assert got.opted_out == ("ciso@rode.example",)
    # Every address of the domain entry opted out: the next candidate (the AS) is used.
    got = resolver.resolve(_host("198.51.100.7", names=("mail.hoster.example",), asn=64500))
    assert got.contact.addresses == ("abuse@as64500.example",)  # type: ignore[union-attr]
    got = resolver.resolve(_host("198.51.100.7", names=("mail.hoster.example",)))
    assert got.contact is None
    assert "every address opted out" in got.reason
    for ip, asn in (("203.0.113.9", None), ("198.51.100.7", 64501)):
        got = resolver.resolve(_host(ip, asn=asn))
        assert got.contact is None
        assert got.reason.startswith("network opted out (optout.txt:")


def test_opt_out_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "optout.txt"
    path.write_text("ok@example.org\nnot an entry\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"optout.txt:2: 'not an entry'"):
        OptOut.load([path])


def test_no_contact_says_why() -> None:
    got = Resolver().resolve(_host("198.51.100.7"))
    assert got.contact is None
    assert got.reason == "no contact in the constituency or contacts file"
    # A constituency attribution without a contact (or by keyword) is no contact either.
    answer = _answer("cidr", "198.51.100.0/24", None)
    assert Resolver().resolve(_host("198.51.100.7", answer)).contact is None
    answer = {
        "contact": "x@y.example",
        "attribution": {"matched_by": "keyword", "rule": "municipality-nl"},
    }
    assert Resolver().resolve(_host("198.51.100.7", answer)).contact is None
