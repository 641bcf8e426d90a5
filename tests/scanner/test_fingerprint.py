"""The pure fingerprint on the corpora, the data self-test, and build selection rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from exwatch.errors import DataError
from exwatch.fingerprint import (
    ENTRIES,
    HttpObservation,
    Sighting,
    _load_entries,
    _load_patterns,
    combine,
    fingerprint,
    match_text,
    product_family,
    required_literal,
    selftest,
    sightings,
)
from exwatch.model import Precision

from .conftest import CORPUS, load_canned

POSITIVE = CORPUS / "positive"
NEGATIVE = CORPUS / "negative"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load(
    (POSITIVE / "expected.yaml").read_text("utf-8")
)


def observe(path: Path, probe: str = "http-owa") -> HttpObservation:
    c = load_canned(path)
    headers = tuple((k.lower(), v) for k, v in c.headers)
    return HttpObservation(probe, "/owa/", c.status, headers, c.body.decode("latin-1"))


def test_every_positive_corpus_file_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in POSITIVE.glob("*.http"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_positive_corpus(name: str) -> None:
    want = EXPECTED[name]
    fp = fingerprint([observe(POSITIVE / name, want["probe"])])
    assert fp.is_exchange
    assert fp.build == want["build"]
    assert (fp.precision.value if fp.precision else None) == want["precision"]
    assert list(fp.sources) == want["sources"]
    assert list(fp.builds_seen) == want["builds_seen"]


NEGATIVE_FILES = sorted(p.name for p in NEGATIVE.glob("*.http"))


def test_negative_corpus_is_not_empty() -> None:
    assert len(NEGATIVE_FILES) >= 10


@pytest.mark.parametrize("name", NEGATIVE_FILES)
@pytest.mark.parametrize(
    "probe",
    [
        "http-owa",
        "http-owa-logon",
        "http-ecp-exporttool",
        "http-ews-ntlm",
        "http-autodiscover",
        "http-activesync",
        "http-control",
        "http-legacy-owa",
        "http-owa-static",
    ],
)
def test_negative_corpus_stays_silent(name: str, probe: str) -> None:
    obs = observe(NEGATIVE / name, probe)
    found = sightings(obs)
    # Weak markers and proxies may fire; nothing that alone says "Exchange" or a build may.
    assert [
        s.entry for s in found if s.kind == "build" or (s.weight == "strong" and s.kind == "marker")
    ] == []
    fp = fingerprint([obs])
    assert not fp.is_exchange
    assert fp.build is None
    assert fp.builds_seen == ()
    assert fp.sources == ()


def test_negatives_cover_the_products_issue_12_names() -> None:
    stems = " ".join(NEGATIVE_FILES)
    for product in (
        "iis",
        "sharepoint",
        "zimbra",
        "kerio",
        "skype",
        "f5",
        "citrix",
        "sophos",
        "forefront-tmg",
        "forefront-uag",
    ):
        assert product in stems, product


ONLINE = CORPUS / "online"


@pytest.mark.parametrize("name", sorted(p.name for p in ONLINE.glob("*.http")))
def test_exchange_online_corpus_is_online_never_on_prem(name: str) -> None:
    fp = fingerprint([observe(ONLINE / name, "http-owa-logon")])
    assert fp.online
    assert not fp.is_exchange
    assert fp.build is None
    assert fp.builds_seen == ()
    assert fp.product == "Exchange Online"
    assert fp.online_sources


def _response(probe: str, status: int, auth: str = "", server: str = "nginx") -> HttpObservation:
    headers = [("server", server)] + ([("www-authenticate", auth)] if auth else [])
    return HttpObservation(probe, "/", status, tuple(headers), "")


def test_closed_owa_pattern_needs_windows_auth_and_an_ordinary_404() -> None:
    closed = [
        _response("http-owa-logon", 404),
        _response("http-autodiscover", 401, "Negotiate"),
        _response("http-ews-ntlm", 401, "NTLM TlRMTVNTUAACAAAA"),
    ]
    assert not fingerprint(closed).is_exchange  # Windows auth everywhere looks the same
    fp = fingerprint([*closed, _response("http-control", 404)])
    assert fp.is_exchange
    assert fp.sources == ("auth-endpoints",)
    assert fp.build is None
    # the same paths answered 401 for the random path: a site behind Windows auth
    assert not fingerprint([*closed, _response("http-control", 401, "Negotiate")]).is_exchange
    # Kerio and Zimbra: Basic on every Exchange path, an ordinary 404 elsewhere
    basic = 'Basic realm="Kerio Connect"'
    kerio = [
        _response(p, 401, basic) for p in ("http-autodiscover", "http-ews-ntlm", "http-activesync")
    ]
    assert not fingerprint([*kerio, _response("http-control", 404)]).is_exchange
    # ActiveSync (Basic) and one Windows-auth path, with the 404
    mixed = [
        _response("http-ews-ntlm", 401, "Negotiate"),
        _response("http-activesync", 401, 'Basic realm="mail"'),
        _response("http-control", 404),
    ]
    assert fingerprint(mixed).is_exchange


def test_clues_count_only_for_their_probe_and_status() -> None:
    # an NTLM 401 on the logon page counts; the same header on a 200 does not
    assert fingerprint(
        [
            _response("http-owa-logon", 401, "NTLM"),
            _response("http-autodiscover", 401, "NTLM"),
            _response("http-control", 404),
        ]
    ).is_exchange
    assert not fingerprint(
        [
            _response("http-owa-logon", 200, "NTLM"),
            _response("http-autodiscover", 200, "NTLM"),
            _response("http-control", 404),
        ]
    ).is_exchange
    # a 404 on another probe is no control
    assert not fingerprint(
        [
            _response("http-owa-logon", 401, "NTLM"),
            _response("http-autodiscover", 401, "NTLM"),
            _response("http-ecp-exporttool", 404),
        ]
    ).is_exchange


def test_exchange_2003_marker_names_its_product() -> None:
    body = '<FORM action="/exchweb/bin/auth/owaauth.dll" method="POST" name="logonForm">'
    fp = fingerprint([HttpObservation("http-legacy-owa", "/exchweb/", 200, (), body)])
    assert fp.is_exchange
    assert fp.build is None
    assert fp.product == "Exchange Server 2003"


def test_pre_auth_proxies_are_recorded_not_exchange() -> None:
    for name, source in (
        ("forefront-tmg-redirect.http", "forefront-tmg"),
        ("forefront-uag.http", "forefront-uag"),
        ("citrix-gateway.http", "citrix-gateway"),
    ):
        fp = fingerprint([observe(NEGATIVE / name, "http-owa-logon")])
        assert fp.proxies == (source,)
        assert not fp.is_exchange


def test_f5_and_weak_markers_alone_are_not_exchange() -> None:
    f5 = fingerprint([observe(NEGATIVE / "f5-apm-redirect.http")])
    assert f5.proxies == ("f5-apm",)
    assert not f5.is_exchange
    title = fingerprint([observe(NEGATIVE / "outlook-title-only.http")])
    assert title.markers == ("owa-title-outlook",)
    assert not title.is_exchange


def test_two_weak_markers_make_exchange() -> None:
    body = "<title>Outlook</title> (c) Microsoft Corporation. All rights reserved."
    fp = fingerprint([HttpObservation("http-owa", "/owa/", 200, (), body)])
    assert fp.is_exchange
    assert fp.build is None
    assert fp.sources == ("owa-logon-page",)


def test_selftest_passes_and_counts_examples() -> None:
    result = selftest()
    assert result.problems == []
    assert result.examples >= 80
    assert result.ok


def test_selftest_is_registered() -> None:
    from exwatch.selftest import CHECKS

    assert "exwatch.fingerprint:selftest" in CHECKS


BASE_ENTRY = {
    "id": "x",
    "kind": "marker",
    "source": "owa-logon-page",
    "reads": "body",
    "pattern": "a",
    "examples": [{"text": "a"}],
    "counter_examples": ["b"],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "magic"}, "kind"),
        ({"source": "guesswork"}, "source"),
        ({"reads": "cookie"}, "reads"),
        ({"pattern": "("}, "compile"),
        ({"kind": "build"}, "build"),
        ({"examples": []}, "example"),
        ({"counter_examples": []}, "counter-example"),
        ({"weight": "medium"}, "weight"),
        ({"status": ["401"]}, "status"),
        ({"status": [99]}, "status"),
        ({"product": "2021"}, "product"),
        ({"kind": "proxy", "product": "2003"}, "product"),
    ],
)
def test_bad_data_is_rejected(change: dict[str, Any], message: str) -> None:
    entry = {**BASE_ENTRY, **change}
    with pytest.raises(DataError, match=message):
        _load_entries(yaml.safe_dump({"entries": [entry]}))


CLUE = {**BASE_ENTRY, "id": "c", "kind": "clue", "source": "windows-auth"}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({"of": ["nope"], "at_least": 1}, "not clue entries"),
        ({"of": ["c"], "at_least": 2}, "at_least"),
        ({"of": [], "all_of": []}, "names no clue"),
        ({"of": ["c"], "at_least": 1, "examples": []}, "examples"),
        ({"of": ["c"], "at_least": 1, "source": "magic"}, "source"),
        ({"of": ["x"], "at_least": 1}, "not clue entries"),  # a marker, not a clue
    ],
)
def test_bad_patterns_are_rejected(pattern: dict[str, Any], message: str) -> None:
    raw = {
        "id": "p",
        "source": "auth-endpoints",
        "examples": [["c"]],
        "counter_examples": [[]],
        **pattern,
    }
    text = yaml.safe_dump({"entries": [BASE_ENTRY, CLUE], "patterns": [raw]})
    entries = _load_entries(text)
    with pytest.raises(DataError, match=message):
        _load_patterns(text, entries)


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(DataError, match="duplicate"):
        _load_entries(yaml.safe_dump({"entries": [BASE_ENTRY, BASE_ENTRY]}))


def test_entry_ids_unique_and_build_entries_have_group() -> None:
    ids = [e.id for e in ENTRIES]
    assert len(ids) == len(set(ids))
    assert all(("build" in e.pattern.groupindex) == (e.kind == "build") for e in ENTRIES)


def sighting(build: str, source: str) -> Sighting:
    return Sighting("e", "build", source, "strong", build, "http-owa", "/owa/")


def test_four_parts_beat_three_and_consistent_cu_agrees() -> None:
    fp = combine([sighting("15.1.2176", "owa-path"), sighting("15.1.2176.14", "exporttool")])
    assert fp.build == "15.1.2176.14"
    assert fp.precision is Precision.SU
    assert fp.builds_seen == ("15.1.2176.14",)
    assert fp.sources == ("exporttool", "owa-path")


def test_inconsistent_cu_is_reported_not_hidden() -> None:
    fp = combine([sighting("15.1.2375", "owa-path"), sighting("15.1.2176.14", "x-owa-version")])
    assert fp.build == "15.1.2176.14"
    assert fp.builds_seen == ("15.1.2176.14", "15.1.2375")
    assert fp.sources == ("x-owa-version",)


def test_oldest_build_is_judged_however_many_sources_name_a_newer_one() -> None:
    """Issue 10 #5: behind a balancer the weakest server is the exposure, so the oldest
    build is `build` even when more sources agree on a newer one (main chose the newer)."""
    fp = combine(
        [
            sighting("15.2.1118.7", "x-owa-version"),
            sighting("15.2.1258.12", "x-owa-version"),
            sighting("15.2.1258.12", "exporttool"),
        ]
    )
    assert fp.build == "15.2.1118.7"
    assert fp.sources[:1] == ("x-owa-version",)
    assert fp.builds_seen == ("15.2.1118.7", "15.2.1258.12")
    tie = combine(
        [sighting("15.2.1258.12", "x-owa-version"), sighting("15.2.1118.7", "x-owa-version")]
    )
    assert tie.build == "15.2.1118.7"
    # an older CU seen only at CU level is older than a newer CU's four-part build
    mixed = combine([sighting("15.1.2308.8", "x-owa-version"), sighting("15.1.2176", "owa-path")])
    assert mixed.build == "15.1.2176"
    assert mixed.precision is Precision.CU
    assert mixed.builds_seen == ("15.1.2176", "15.1.2308.8")


def test_ntlm_counts_as_source_only_for_exchange() -> None:
    assert combine([], ntlm=True).sources == ()
    assert "ntlm" in combine([sighting("15.1.2176.9", "x-owa-version")], ntlm=True).sources


def test_zero_padded_header_is_normalised() -> None:
    obs = HttpObservation("http-owa", "/owa/", 302, (("x-owa-version", "15.01.2176.009"),), "")
    assert fingerprint([obs]).build == "15.1.2176.9"


def test_many_versions_on_one_page_are_capped() -> None:
    body = "".join(f'<link href="/owa/auth/15.1.{n}/themes/x.css">' for n in range(1000, 1500))
    fp = fingerprint([HttpObservation("http-owa", "/owa/", 200, (), body)])
    assert len(fp.builds_seen) == 20


def test_exporttool_pattern_only_reads_exporttool_responses() -> None:
    body = (POSITIVE / "exporttool-manifest.http").read_text("utf-8")
    assert fingerprint([HttpObservation("http-owa", "/owa/", 200, (), body)]).build is None
    assert (
        fingerprint([HttpObservation("http-ecp-exporttool", "/ecp/", 200, (), body)]).build
        == "15.2.986.5"
    )


@pytest.mark.parametrize(
    ("build", "product"),
    [
        ("15.2.2562.17", "Exchange Server SE"),
        ("15.2.2561.1", "Exchange Server 2019"),
        ("15.1.2176", "Exchange Server 2016"),
        ("15.0.1497.26", "Exchange Server 2013"),
        ("14.3.513.0", "Exchange Server 2010"),
        ("8.3.485.1", "Exchange Server 2007"),
        ("16.0.1.1", None),
        ("nonsense", None),
    ],
)
def test_product_family(build: str, product: str | None) -> None:
    assert product_family(build) == product


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        (r"/owa/auth/(?P<build>15\.\d{1,2}\.\d{1,5})/(?:themes|scripts)/", "/owa/auth/15."),
        (r"(?i)\{57A118C6-2DA9-419d-BE9A-F92B0F9A418B\}", "{57a118c6-2da9-419d-be9a-f92b0f9a418b}"),
        (r"(?:abcdef|ghijkl)", None),  # an alternation has no literal every match contains
        (r"a\d(?:bcd)?e", None),  # optional parts end a run; what is left is too short
        (r"x(?i:ABCDEFG)y", None),  # a group with its own flags is not read
        (r"(abc)(defg)", "abcdefg"),  # plain groups are part of the sequence
        (r"foo\bbar", None),
    ],
)
def test_required_literal(pattern: str, needle: str | None) -> None:
    assert required_literal(re.compile(pattern)) == needle


def test_every_body_entry_with_a_needle_finds_it_in_its_examples() -> None:
    gated = [e for e in ENTRIES if e.needle is not None]
    assert len(gated) >= 10, "the gate should cover most body entries"
    for e in gated:
        for ex in e.examples:
            assert e.needle in ex["text"].lower(), e.id


def test_needle_gate_keeps_unicode_case_folding_matches() -> None:
    """(?i) also matches U+017F for s and U+0131/U+0130 for i: the gate must not drop them."""
    entry = next(e for e in ENTRIES if e.id == "owa-title")
    assert entry.needle == "</title>"
    assert entry.needle_ascii_only
    text = "<title>Outlook Web App</t\u0131tle>"  # dotless i inside the needle's span
    assert entry.needle not in text.lower()
    assert re.search(entry.pattern, text)
    assert match_text(entry, text) == [None]
    obs = HttpObservation("http-owa-logon", "/owa/auth/logon.aspx", 200, (), text)
    assert "owa-title" in {s.entry for s in sightings(obs)}


def test_needle_gate_rules_out_pages_without_the_literal() -> None:
    body = "<html><head><title>Welcome</title></head><body>nothing here</body></html>"
    obs = HttpObservation("http-owa-logon", "/owa/auth/logon.aspx", 200, (), body)
    assert sightings(obs) == []
