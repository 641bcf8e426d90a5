from __future__ import annotations

from pathlib import Path

import pytest

from exwatch.enrich.constituency import Constituency, parse_match
from exwatch.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def const() -> Constituency:
    return Constituency.load(FIXTURES / "constituency.csv")


def test_loads_every_entry_with_its_line(const: Constituency) -> None:
    assert len(const) == 9
    first = const.entries[0]
    assert (first.line, first.kind, first.match, first.sector) == (
        3,
        "cidr",
        "198.51.100.0/24",
        "municipality",
    )
    assert first.contact == "cert@voorbeeld.example"
    assert first.language == "nl"
    assert const.source.startswith("constituency.csv (9 entries, sha256 ")


def test_longest_prefix_wins(const: Constituency) -> None:
    assert const.by_ip("198.51.100.10").organisation == "Gemeente Voorbeeld"  # type: ignore[union-attr]
    assert const.by_ip("198.51.100.200").organisation == "Politiezone Voorbeeld"  # type: ignore[union-attr]
    assert const.by_ip("2001:db8:1:ffff::25").sector == "health"  # type: ignore[union-attr]
    assert const.by_ip("203.0.113.5") is None
    assert const.by_ip("2001:db8:2::1") is None
    assert const.by_ip("not an ip") is None


def test_domain_suffix_longest_and_label_boundary(const: Constituency) -> None:
    assert const.by_domain("mail.voorbeeld.nl").organisation == "Gemeente Voorbeeld"  # type: ignore[union-attr]
    assert const.by_domain("voorbeeld.nl").organisation == "Gemeente Voorbeeld"  # type: ignore[union-attr]
    assert const.by_domain("notvoorbeeld.nl") is None
    deep = const.by_domain("dc1.intern.ziekenhuis-voorbeeld.nl")
    assert deep is not None
    assert deep.organisation == "Ziekenhuis Voorbeeld Intern"
    assert const.by_domain("owa.ziekenhuis-voorbeeld.nl").organisation == "Ziekenhuis Voorbeeld"  # type: ignore[union-attr]


def test_asn(const: Constituency) -> None:
    assert const.by_asn(2611).organisation == "BELNET"  # type: ignore[union-attr]
    assert const.by_asn(64501) is None
    assert const.by_asn(None) is None


@pytest.mark.parametrize(
    ("fixture", "line", "words"),
    [
        ("bad_sector.csv", 3, "governement"),
        ("bad_cidr.csv", 4, "not a valid CIDR"),
        ("host_bits.csv", 2, "host bits"),
        ("bad_asn.csv", 2, "32-bit"),
        ("bad_match.csv", 2, "neither a CIDR"),
        ("unknown_column.csv", 1, "sectr"),
        ("missing_column.csv", 1, "missing column(s) sector"),
        ("duplicate.csv", 4, "already listed on line 2"),
        ("too_many_fields.csv", 2, "4 fields"),
        ("bad_country.csv", 2, "ISO 3166"),
        ("bad_language.csv", 2, "language tag"),
        ("empty_organisation.csv", 2, "organisation is empty"),
    ],
)
def test_malformed_files_name_the_line(fixture: str, line: int, words: str) -> None:
    with pytest.raises(DataError) as caught:
        Constituency.load(FIXTURES / fixture)
    message = str(caught.value)
    assert f"{fixture}:{line}:" in message
    assert words in message


def test_unterminated_quote_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"bad_quote\.csv"):
        Constituency.load(FIXTURES / "bad_quote.csv")


@pytest.mark.parametrize(
    ("fixture", "words"),
    [("empty.csv", "no header row"), ("latin1.csv", "not UTF-8"), ("absent.csv", "cannot read")],
)
def test_unreadable_files(fixture: str, words: str) -> None:
    with pytest.raises(DataError, match=words):
        Constituency.load(FIXTURES / fixture)


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfMatch,Organisation,Sector\r\nAS64496,Org,energy\r\n")
    const = Constituency.load(path)
    assert const.by_asn(64496) is not None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("192.0.2.0/24", ("cidr", "192.0.2.0/24")),
        ("192.0.2.7", ("cidr", "192.0.2.7/32")),
        ("2001:DB8::/32", ("cidr", "2001:db8::/32")),
        ("as2611", ("asn", "AS2611")),
        ("*.Example.BE", ("domain", "example.be")),
        (".example.be", ("domain", "example.be")),
    ],
)
def test_parse_match(raw: str, expected: tuple[str, str]) -> None:
    assert parse_match(raw, "here") == expected
