"""Country and AS lookups: iptocc's embedded RIR data and mmdb files written at test time.

All lookups are offline (data inside the package or a temp file); no traffic is sent.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from exwatch.enrich import Enricher
from exwatch.enrich.asn import NO_ASN_SOURCE
from exwatch.enrich.geo import RirCountry
from exwatch.enrich.mmdb import (
    MmdbDatabase,
    capabilities,
    default_geo_folders,
    detect_databases,
    discover_mmdb,
)
from exwatch.errors import DataError

WriteMmdb = Callable[[Path, str, dict[str, dict[str, Any]]], Path]


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("193.190.253.144", "BE"),  # BELNET
        ("193.0.0.1", "NL"),  # RIPE NCC
        ("8.8.8.8", "US"),
        ("1.0.16.1", "JP"),
        ("130.149.1.1", "DE"),  # TU Berlin (DFN)
        ("193.51.224.1", "FR"),  # RENATER
        ("2001:67c:2e8::1", "NL"),  # RIPE NCC
        ("192.0.2.1", None),  # documentation
        ("10.1.2.3", None),  # private
        ("not-an-address", None),
        ("", None),
    ],
)
def test_iptocc_registration_country(ip: str, country: str | None) -> None:
    assert RirCountry().countries([ip]) == [country]


def test_iptocc_source_names_version_and_data_date() -> None:
    source = RirCountry().source
    assert re.fullmatch(
        r"iptocc \d+\.\d+\.\d+ \(RIR registration, data \d{4}-\d{2}-\d{2}\)", source
    )


def test_country_and_asn_databases_read_back(mmdb_dir: Path) -> None:
    country = MmdbDatabase.open(mmdb_dir / "GeoLite2-Country.mmdb")
    asn = MmdbDatabase.open(mmdb_dir / "GeoLite2-ASN.mmdb")
    assert (country.provides_country, country.provides_asn) == (True, False)
    assert (asn.provides_country, asn.provides_asn) == (False, True)
    assert [
        country.country(ip)
        for ip in (
            "193.190.253.144",
            "145.100.1.1",
            "130.149.1.1",
            "193.51.224.9",
            "8.8.8.8",
            "2a02:2788::1",
        )
    ] == ["BE", "NL", "DE", "FR", "US", "BE"]
    assert country.country("192.0.2.1") is None
    assert country.country("garbage") is None
    info = asn.asn("193.190.253.144")
    assert info is not None
    assert (info.asn, info.as_name) == (2611, "BELNET")
    assert asn.asn("203.0.113.1") is None
    assert "GeoLite2-ASN (GeoLite2-ASN.mmdb, built " in asn.source


def test_ipinfo_lite_fields(mmdb_dir: Path) -> None:
    db = MmdbDatabase.open(mmdb_dir / "ipinfo_lite.mmdb")
    assert (db.provides_country, db.provides_asn) == (True, True)
    assert db.country("8.8.8.8") == "US"
    info = db.asn("193.190.253.144")
    assert info is not None
    assert (info.asn, info.as_name, info.as_domain) == (
        2611,
        "BELNET",
        "belnet.be",
    )


@pytest.mark.parametrize(
    ("database_type", "expected"),
    [
        ("GeoLite2-Country", (True, False)),
        ("GeoIP2-City", (True, False)),
        ("DBIP-Country-Lite", (True, False)),
        ("DBIP-ASN-Lite (compat=GeoLite2-ASN)", (False, True)),
        ("GeoIP2-ISP", (False, True)),
        ("ipinfo lite", (True, True)),
        ("GeoIP2-Anonymous-IP", (False, False)),
    ],
)
def test_capabilities_from_database_type(database_type: str, expected: tuple[bool, bool]) -> None:
    assert capabilities(database_type) == expected


def test_enricher_uses_given_databases(mmdb_dir: Path) -> None:
    enricher = Enricher(
        geo_db=mmdb_dir / "GeoLite2-Country.mmdb",
        asn_db=mmdb_dir / "GeoLite2-ASN.mmdb",
        auto_detect=False,
    )
    out = enricher.enrich({"ip": "193.190.253.144"})
    assert (out["country"], out["asn"], out["as_name"]) == ("BE", 2611, "BELNET")
    assert out["country_kind"] == "geolocation"
    assert out["country_source"].startswith("GeoLite2-Country (GeoLite2-Country.mmdb, built ")
    assert out["asn_source"].startswith("GeoLite2-ASN (")
    assert enricher.warnings == []


def test_combined_ipinfo_file_serves_both(mmdb_dir: Path) -> None:
    out = Enricher(geo_db=mmdb_dir / "ipinfo_lite.mmdb", auto_detect=False).enrich(
        {"ip": "8.8.8.8"}
    )
    assert (out["country"], out["asn"], out["as_name"], out["as_domain"]) == (
        "US",
        15169,
        "Google LLC",
        "google.com",
    )


def test_without_databases_asn_is_unknown() -> None:
    out = Enricher(auto_detect=False).enrich({"ip": "193.190.253.144"})
    assert (out["country"], out["country_kind"]) == ("BE", "registration")
    assert (out["asn"], out["as_name"], out["asn_source"]) == (None, None, NO_ASN_SOURCE)


def test_wrong_kind_of_database_is_refused(mmdb_dir: Path) -> None:
    with pytest.raises(DataError, match="holds no country data"):
        Enricher(geo_db=mmdb_dir / "GeoLite2-ASN.mmdb", auto_detect=False)
    with pytest.raises(DataError, match="holds no ASN data"):
        Enricher(asn_db=mmdb_dir / "GeoLite2-Country.mmdb", auto_detect=False)


def test_unreadable_databases(tmp_path: Path, mmdb_writer: WriteMmdb) -> None:
    corrupt = tmp_path / "corrupt.mmdb"
    corrupt.write_bytes(b"\x00" * 512)
    with pytest.raises(DataError, match="not a readable MaxMind-format database"):
        MmdbDatabase.open(corrupt)
    with pytest.raises(DataError, match="no such database file"):
        MmdbDatabase.open(tmp_path / "absent.mmdb")
    odd = mmdb_writer(tmp_path / "odd.mmdb", "GeoIP2-Anonymous-IP", {"192.0.2.0/24": {"x": 1}})
    with pytest.raises(DataError, match="neither country nor ASN"):
        MmdbDatabase.open(odd)


def test_auto_detection_in_given_folders(tmp_path: Path, mmdb_dir: Path) -> None:
    first, second, empty = tmp_path / "share", tmp_path / "xdg", tmp_path / "empty"
    for folder in (first, second, empty):
        folder.mkdir()
    shutil.copy(mmdb_dir / "GeoLite2-Country.mmdb", first)
    shutil.copy(mmdb_dir / "GeoLite2-ASN.mmdb", second)
    (second / "broken.mmdb").write_bytes(b"not a database")
    (second / "readme.txt").write_text("ignored")
    found = discover_mmdb([first, second, tmp_path / "missing"])
    assert [p.name for p in found] == ["GeoLite2-Country.mmdb", "GeoLite2-ASN.mmdb", "broken.mmdb"]

    detected = detect_databases([first, second])
    assert detected.country is not None
    assert detected.country.database_type == "GeoLite2-Country"
    assert detected.asn is not None
    assert detected.asn.database_type == "GeoLite2-ASN"
    assert len(detected.warnings) == 1
    assert "broken.mmdb" in detected.warnings[0]

    enricher = Enricher(geo_folders=[first, second])
    out = enricher.enrich({"ip": "145.100.1.1"})
    assert (out["country"], out["asn"], out["country_kind"]) == ("NL", 1103, "geolocation")
    assert any("broken.mmdb" in w for w in enricher.warnings)

    plain = Enricher(geo_folders=[empty]).enrich({"ip": "145.100.1.1"})
    assert plain["country_kind"] == "registration"
    assert plain["asn"] is None


def test_default_folders_follow_xdg() -> None:
    folders = default_geo_folders({"XDG_DATA_HOME": "/data/home", "HOME": "/home/u"})
    assert folders == [Path("/usr/share/GeoIP"), Path("/var/lib/GeoIP"), Path("/data/home/exwatch")]
    fallback = default_geo_folders({"HOME": "/home/u"})
    assert fallback[-1] == Path("/home/u/.local/share/exwatch")


def test_stale_database_warns(mmdb_dir: Path) -> None:
    db = MmdbDatabase.open(mmdb_dir / "GeoLite2-ASN.mmdb")
    later = db.build_date + timedelta(days=400)
    enricher = Enricher(asn_db=mmdb_dir / "GeoLite2-ASN.mmdb", auto_detect=False, today=later)
    assert len(enricher.warnings) == 1
    assert "400 days old" in enricher.warnings[0]
    assert db.stale_warning(db.build_date) is None
