"""One `enrichment` object per scan record: country, AS, organisation evidence and sector.

Attribution precedence (first that applies wins; the others are kept as `candidates`):
  1. constituency CIDR                                   matched_by=cidr, confidence high
  2. constituency domain suffix on evidence              matched_by=cert_cn|cert_san|
     (certificate CN, SANs, NTLM AD domain, confirmed       ntlm_dns_domain|ptr|hostname
     PTR, scanned hostname - in that order)
  3. constituency AS number (marks the hoster only)      matched_by=asn, confidence low
  4. keyword rules (data/sector_rules.yaml) on evidence  matched_by=keyword
Every answer carries its source (database/file and data date) so reports can state them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from exwatch.enrich.asn import AsnSource, MmdbAsn, NoAsn
from exwatch.enrich.constituency import Constituency, ConstituencyEntry
from exwatch.enrich.geo import CountrySource, MmdbCountry, RirCountry
from exwatch.enrich.mmdb import AsnInfo, Detected, MmdbDatabase, default_geo_folders
from exwatch.enrich.mmdb import detect_databases as _detect
from exwatch.enrich.orgs import (
    DOMAIN_EVIDENCE_ORDER,
    Evidence,
    evidence_from_record,
    is_shared_certificate,
    ptr_evidence,
    registered_domains,
)
from exwatch.enrich.rdns import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    SYSTEM_RESOLVER,
    PtrResult,
    Resolver,
    resolve_ptrs,
)
from exwatch.enrich.sectors import SectorRules, default_rules
from exwatch.errors import DataError

ENRICHMENT_SCHEMA_VERSION = 1

# Domain evidence kinds whose constituency match is strong on its own.
_EVIDENCE_RANK = {kind: rank for rank, kind in enumerate(DOMAIN_EVIDENCE_ORDER)}
_STRONG_DOMAIN_EVIDENCE = frozenset({"cert_cn", "cert_san", "ntlm_dns_domain", "hostname"})


class Enricher:
    """Enrich scan records; build once, reuse for every record (sources and caches are shared).

    geo_db / asn_db: paths of .mmdb files (a combined IPinfo Lite file may serve as both).
    constituency: a CSV path or a loaded Constituency.
    rdns: resolve forward-confirmed PTR names in `enrich_many` (sends DNS queries).
    auto_detect: look for .mmdb files in `geo_folders` (default: /usr/share/GeoIP,
    /var/lib/GeoIP, $XDG_DATA_HOME/exwatch) when geo_db/asn_db are not given.
    """

    def __init__(
        self,
        geo_db: Path | str | None = None,
        asn_db: Path | str | None = None,
        constituency: Constituency | Path | str | None = None,
        rdns: bool = False,
        auto_detect: bool = True,
        *,
        geo_folders: Sequence[Path] | None = None,
        resolver: Resolver = SYSTEM_RESOLVER,
        rdns_concurrency: int = DEFAULT_CONCURRENCY,
        rdns_timeout: float = DEFAULT_TIMEOUT,
        sector_rules: SectorRules | None = None,
        today: date | None = None,
    ) -> None:
        self.warnings: list[str] = []
        self.rdns = rdns
        self.resolver = resolver
        self.rdns_concurrency = rdns_concurrency
        self.rdns_timeout = rdns_timeout
        self.rules = sector_rules or default_rules()

        detected = Detected()
        if auto_detect and (geo_db is None or asn_db is None):
            folders = list(geo_folders) if geo_folders is not None else default_geo_folders()
            detected = _detect(folders)
            self.warnings.extend(detected.warnings)

        geo = MmdbDatabase.open(geo_db) if geo_db is not None else None
        if geo is not None and not geo.provides_country:
            raise DataError(f"{geo.path}: {geo.database_type} holds no country data (--geo-db)")
        asn = MmdbDatabase.open(asn_db) if asn_db is not None else None
        if asn is not None and not asn.provides_asn:
            raise DataError(f"{asn.path}: {asn.database_type} holds no ASN data (--asn-db)")
        if asn is None and geo is not None and geo.provides_asn:
            asn = geo
        country_db = geo or detected.country
        asn_db_used = asn or detected.asn

        self.country: CountrySource = MmdbCountry(country_db) if country_db else RirCountry()
        self.asn: AsnSource = MmdbAsn(asn_db_used) if asn_db_used else NoAsn()
        for db in {id(d): d for d in (country_db, asn_db_used) if d is not None}.values():
            warning = db.stale_warning(today)
            if warning:
                self.warnings.append(warning)

        if isinstance(constituency, str | Path):
            constituency = Constituency.load(constituency, self.rules.sectors)
        self.constituency = constituency

    @property
    def sources(self) -> dict[str, str | None]:
        return {
            "country": self.country.source,
            "asn": self.asn.source,
            "constituency": self.constituency.source if self.constituency else None,
            "sector_rules": self.rules.source,
        }

    def enrich(self, record: Mapping[str, Any], ptr: PtrResult | None = None) -> dict[str, Any]:
        """The enrichment object for one record (no DNS; pass a PtrResult to use one)."""
        ptrs = {ptr.ip: ptr} if ptr is not None else None
        return self.enrich_batch([record], ptrs)[0]

    def enrich_batch(
        self,
        records: Sequence[Mapping[str, Any]],
        ptrs: Mapping[str, PtrResult] | None = None,
    ) -> list[dict[str, Any]]:
        """Enrichment objects for many records, in order; country and AS lookups are batched."""
        ip_list = [ip if isinstance(ip := r.get("ip"), str) else "" for r in records]
        countries = self.country.countries(ip_list)
        asns = self.asn.lookup_many(ip_list)
        stamp = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        return [
            self._one(rec, ip, country, asn, ptrs.get(ip) if ptrs else None, stamp)
            for rec, ip, country, asn in zip(records, ip_list, countries, asns, strict=True)
        ]

    async def enrich_many(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Like enrich_batch, resolving forward-confirmed PTR names first when rdns is on."""
        ptrs: dict[str, PtrResult] | None = None
        if self.rdns:
            ips = [r["ip"] for r in records if isinstance(r.get("ip"), str) and r["ip"]]
            ptrs = await resolve_ptrs(ips, self.resolver, self.rdns_concurrency, self.rdns_timeout)
        return self.enrich_batch(records, ptrs)

    def _one(
        self,
        record: Mapping[str, Any],
        ip: str,
        country: str | None,
        asn: AsnInfo | None,
        ptr: PtrResult | None,
        stamp: str,
    ) -> dict[str, Any]:
        evidence = evidence_from_record(record)
        if ptr is not None and ptr.confirmed and ptr.name:
            ev = ptr_evidence(ptr.name)
            if ev is not None:
                evidence.append(ev)
        candidates = self._candidates(ip, asn, evidence)
        winner = candidates[0] if candidates else None
        hoster = next((c["organisation"] for c in candidates if c["matched_by"] == "asn"), None)
        return {
            "schema_version": ENRICHMENT_SCHEMA_VERSION,
            "enriched_at": stamp,
            "country": country,
            "country_source": self.country.source,
            "country_kind": self.country.kind,
            "asn": asn.asn if asn else None,
            "as_name": asn.as_name if asn else None,
            "as_domain": asn.as_domain if asn else None,
            "asn_source": self.asn.source,
            "organisation": winner["organisation"] if winner else None,
            "organisation_country": winner.get("country") if winner else None,
            "sector": winner["sector"] if winner else "unknown",
            "hoster": hoster,
            "contact": winner.get("contact") if winner else None,
            "language": winner.get("language") if winner else None,
            "attribution": _public(winner) if winner else None,
            "candidates": [_public(c) for c in candidates[1:]],
            "domains": registered_domains(evidence),
            "evidence": [ev.to_json() for ev in evidence],
            "ptr": ptr.to_json() if ptr is not None else None,
        }

    def _candidates(
        self, ip: str, asn: AsnInfo | None, evidence: list[Evidence]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        const = self.constituency
        if const is not None:
            entry = const.by_ip(ip) if ip else None
            if entry is not None:
                out.append(self._from_entry(entry, "cidr", entry.match, "high"))
            out.extend(self._domain_matches(const, evidence))
            entry = const.by_asn(asn.asn if asn else None)
            if entry is not None:
                found = self._from_entry(entry, "asn", entry.match, "low")
                found["hoster"] = True
                out.append(found)
        keyword = self.rules.match(ev for ev in evidence)
        if keyword is not None:
            ev, rule = keyword.evidence, keyword.rule
            out.append(
                {
                    "matched_by": "keyword",
                    "value": ev.value,
                    "rule": rule.id,
                    "confidence": rule.confidence,
                    "evidence_kind": ev.kind,
                    "organisation": ev.registered_domain or (None if ev.is_domain else ev.value),
                    "sector": rule.sector,
                    "source": self.rules.source,
                }
            )
        return out

    def _domain_matches(
        self, const: Constituency, evidence: list[Evidence]
    ) -> list[dict[str, Any]]:
        by_org: dict[str, dict[str, Any]] = {}
        shared = is_shared_certificate(evidence)
        ranked = [ev for ev in evidence if ev.kind in _EVIDENCE_RANK]
        ranked.sort(key=lambda ev: _EVIDENCE_RANK[ev.kind])
        for ev in ranked:
            entry = const.by_domain(ev.value)
            if entry is None or entry.organisation in by_org:
                continue
            cert = ev.kind in ("cert_cn", "cert_san")
            strong = ev.kind in _STRONG_DOMAIN_EVIDENCE and not (shared and cert)
            found = self._from_entry(entry, ev.kind, ev.value, "high" if strong else "medium")
            found["suffix"] = entry.match
            by_org[entry.organisation] = found
        matches = list(by_org.values())
        if len(matches) > 1:
            # Evidence names several constituents (shared certificate, hosted AD...): say so.
            matches[0]["confidence"] = "medium"
            matches[0]["conflicts"] = [m["organisation"] for m in matches[1:]]
        return matches

    def _from_entry(
        self, entry: ConstituencyEntry, matched_by: str, value: str, confidence: str
    ) -> dict[str, Any]:
        assert self.constituency is not None
        return {
            "matched_by": matched_by,
            "value": value,
            "rule": f"constituency:{entry.line}",
            "confidence": confidence,
            "organisation": entry.organisation,
            "sector": entry.sector,
            "country": entry.country,
            "contact": entry.contact,
            "language": entry.language,
            "org_id": entry.org_id,
            "source": self.constituency.source,
        }


def _public(candidate: Mapping[str, Any]) -> dict[str, Any]:
    # Contact details are stated once at the top level, not repeated per candidate.
    return {k: v for k, v in candidate.items() if k not in ("contact", "language")}


__all__ = ["ENRICHMENT_SCHEMA_VERSION", "Enricher"]
