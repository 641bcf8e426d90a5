"""Enrichment of scan records: country, AS, organisation evidence and sector.

    from exwatch.enrich import Enricher
    enricher = Enricher(constituency="constituency.csv")
    record["enrichment"] = enricher.enrich(record)

Pure library code: the scan, ingest and report commands decide when to call it.
"""

from __future__ import annotations

from exwatch.enrich.constituency import Constituency, ConstituencyEntry
from exwatch.enrich.enricher import ENRICHMENT_SCHEMA_VERSION, Enricher
from exwatch.enrich.mmdb import MmdbDatabase, default_geo_folders, detect_databases, discover_mmdb
from exwatch.enrich.rdns import PtrResult, Resolver, forward_confirmed_ptr, resolve_ptrs
from exwatch.enrich.sectors import SectorRules, default_rules, sector_vocabulary

__all__ = [
    "ENRICHMENT_SCHEMA_VERSION",
    "Constituency",
    "ConstituencyEntry",
    "Enricher",
    "MmdbDatabase",
    "PtrResult",
    "Resolver",
    "SectorRules",
    "default_geo_folders",
    "default_rules",
    "detect_databases",
    "discover_mmdb",
    "forward_confirmed_ptr",
    "resolve_ptrs",
    "sector_vocabulary",
]
