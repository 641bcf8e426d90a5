"""Country of an address: iptocc (RIR registration data in the wheel) or a user's mmdb.

The two answer different questions and disagree for ~5 % of addresses (28 % for a small country):
iptocc gives the country a Regional Internet Registry registered the block to, a geolocation
database where the address is used.  Every answer carries its source and data date.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from typing import Literal, Protocol

import iptocc

from exwatch.enrich.mmdb import MmdbDatabase

CountryKind = Literal["registration", "geolocation"]


class CountrySource(Protocol):
    source: str
    kind: CountryKind

    def countries(self, ips: Sequence[str]) -> list[str | None]: ...


@lru_cache(maxsize=1)
def iptocc_data_date() -> str | None:
    """Build date of the installed iptocc wheel: its data is refreshed for every nightly build.

    The wheel states no data date; its CycloneDX SBOM records when it was built (YYYY-MM-DD).
    """
    try:
        dist = metadata.distribution("iptocc")
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if "sboms" in file.parts and file.name.endswith(".json"):
            try:
                doc = json.loads(file.read_text())
            except (OSError, ValueError):
                continue
            stamp = doc.get("metadata", {}).get("timestamp") if isinstance(doc, dict) else None
            if isinstance(stamp, str) and len(stamp) >= 10:
                return stamp[:10]
    return None


class RirCountry:
    """Country of registration from the RIR delegation data embedded in iptocc."""

    kind: CountryKind = "registration"
    label = "country of registration (RIR)"

    def __init__(self) -> None:
        version = metadata.version("iptocc")
        data = iptocc_data_date() or "date unknown"
        self.data_date = iptocc_data_date()
        self.source = f"iptocc {version} (RIR registration, data {data})"

    def countries(self, ips: Sequence[str]) -> list[str | None]:
        # One batch call: the per-call overhead dominates single lookups.
        return iptocc.country_code(list(ips))


class MmdbCountry:
    """Country from a user's geolocation database (GeoLite2/GeoIP2, DB-IP, IPinfo)."""

    kind: CountryKind = "geolocation"
    label = "country (geolocation)"

    def __init__(self, db: MmdbDatabase) -> None:
        self.db = db
        self.data_date = db.build_date.isoformat()
        self.source = db.source

    def countries(self, ips: Sequence[str]) -> list[str | None]:
        return [self.db.country(ip) for ip in ips]


__all__ = ["CountryKind", "CountrySource", "MmdbCountry", "RirCountry", "iptocc_data_date"]
