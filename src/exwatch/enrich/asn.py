"""Autonomous system of an address, from a user-supplied mmdb (nothing fresh ships offline).

The AS identifies the network operator - for hosted servers the hoster, not the customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from exwatch.enrich.mmdb import AsnInfo, MmdbDatabase

NO_ASN_SOURCE = "unknown (no ASN database; pass --asn-db FILE.mmdb)"


class AsnSource(Protocol):
    source: str

    def lookup_many(self, ips: Sequence[str]) -> list[AsnInfo | None]: ...


class MmdbAsn:
    def __init__(self, db: MmdbDatabase) -> None:
        self.db = db
        self.source = db.source

    def lookup_many(self, ips: Sequence[str]) -> list[AsnInfo | None]:
        return [self.db.asn(ip) for ip in ips]


class NoAsn:
    source = NO_ASN_SOURCE

    def lookup_many(self, ips: Sequence[str]) -> list[AsnInfo | None]:
        return [None] * len(ips)


__all__ = ["NO_ASN_SOURCE", "AsnInfo", "AsnSource", "MmdbAsn", "NoAsn"]
