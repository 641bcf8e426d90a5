"""Tiny MaxMind-format databases written at test time with mmdb-writer, read back by exwatch.

The networks are real registry allocations (BELNET, SURF, DFN, RENATER, Google) so the same
addresses also make sense to iptocc; nothing is ever sent to them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]  # netaddr ships no type hints

COUNTRIES = {
    "193.190.0.0/15": "BE",
    "145.100.0.0/15": "NL",
    "130.149.0.0/16": "DE",
    "193.51.224.0/20": "FR",
    "8.8.8.0/24": "US",
    "2001:67c:2e8::/48": "NL",
    "2a02:2788::/32": "BE",
}
ASNS = {
    "193.190.0.0/15": (2611, "BELNET"),
    "145.100.0.0/15": (1103, "SURF B.V."),
    "130.149.0.0/16": (680, "Verein zur Foerderung eines Deutschen Forschungsnetzes e.V."),
    "193.51.224.0/20": (2200, "Renater"),
    "8.8.8.0/24": (15169, "GOOGLE"),
    "2a02:2788::/32": (2611, "BELNET"),
}


def write_mmdb(path: Path, database_type: str, networks: dict[str, dict[str, Any]]) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for cidr, content in networks.items():
        writer.insert_network(IPSet([cidr]), content)
    writer.to_db_file(str(path))
    return path


def country_db(path: Path, database_type: str = "GeoLite2-Country") -> Path:
    return write_mmdb(
        path,
        database_type,
        {
            c: {"country": {"iso_code": cc}, "registered_country": {"iso_code": cc}}
            for c, cc in COUNTRIES.items()
        },
    )


def asn_db(path: Path, database_type: str = "GeoLite2-ASN") -> Path:
    return write_mmdb(
        path,
        database_type,
        {
            c: {"autonomous_system_number": n, "autonomous_system_organization": name}
            for c, (n, name) in ASNS.items()
        },
    )


def ipinfo_db(path: Path) -> Path:
    return write_mmdb(
        path,
        "ipinfo lite",
        {
            "193.190.0.0/15": {
                "country": "Belgium",
                "country_code": "BE",
                "asn": "AS2611",
                "as_name": "BELNET",
                "as_domain": "belnet.be",
            },
            "8.8.8.0/24": {
                "country": "United States",
                "country_code": "US",
                "asn": "AS15169",
                "as_name": "Google LLC",
                "as_domain": "google.com",
            },
        },
    )


@pytest.fixture(scope="session")
def mmdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GeoLite2-Country.mmdb, GeoLite2-ASN.mmdb and ipinfo_lite.mmdb in one folder."""
    folder = tmp_path_factory.mktemp("geoip")
    country_db(folder / "GeoLite2-Country.mmdb")
    asn_db(folder / "GeoLite2-ASN.mmdb")
    ipinfo_db(folder / "ipinfo_lite.mmdb")
    return folder


@pytest.fixture(scope="session")
def mmdb_writer() -> Callable[[Path, str, dict[str, dict[str, Any]]], Path]:
    return write_mmdb


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return Path(__file__).parent / "fixtures"
