"""Attribution precedence: constituency CIDR > domain evidence > ASN (hoster) > keyword rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exwatch.enrich import Enricher, Resolver
from exwatch.enrich.rdns import LookupFailed
from exwatch.errors import DataError

WriteMmdb = Callable[[Path, str, dict[str, dict[str, Any]]], Path]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def hoster_asn(tmp_path_factory: pytest.TempPathFactory, mmdb_writer: WriteMmdb) -> Path:
    hoster = {"autonomous_system_number": 64500, "autonomous_system_organization": "HOSTER-AS"}
    return mmdb_writer(
        tmp_path_factory.mktemp("asn") / "asn.mmdb",
        "GeoLite2-ASN",
        {"192.0.2.0/24": hoster, "198.51.100.0/24": hoster},
    )


@pytest.fixture(scope="module")
def enricher(hoster_asn: Path) -> Enricher:
    return Enricher(
        asn_db=hoster_asn, constituency=FIXTURES / "constituency.csv", auto_detect=False
    )


def rec(
    ip: str,
    cn: str | None = None,
    san: list[str] | None = None,
    ntlm_domain: str | None = None,
    hostname: str | None = None,
) -> dict[str, Any]:
    tls = {"subject_cn": cn, "san": san or ([cn] if cn else [])} if cn or san else None
    ntlm = {"dns_domain": ntlm_domain, "dns_tree": ntlm_domain} if ntlm_domain else None
    return {"ip": ip, "port": 443, "hostname": hostname, "tls": tls, "ntlm": ntlm}


def test_cidr_beats_domain_and_asn(enricher: Enricher) -> None:
    out = enricher.enrich(rec("198.51.100.200", cn="mail.voorbeeld.nl"))
    assert (out["organisation"], out["sector"]) == ("Politiezone Voorbeeld", "police")
    assert out["attribution"]["matched_by"] == "cidr"
    assert out["attribution"]["value"] == "198.51.100.128/25"
    assert out["attribution"]["rule"] == "constituency:4"
    assert out["attribution"]["confidence"] == "high"
    assert out["attribution"]["source"].startswith("constituency.csv (9 entries")
    assert [c["matched_by"] for c in out["candidates"]] == ["cert_cn", "asn"]
    assert (out["contact"], out["language"], out["organisation_country"]) == (
        "soc@pz.example",
        "nl",
        "BE",
    )
    assert out["hoster"] == "Hoster Voorbeeld"


def test_domain_evidence_beats_asn(enricher: Enricher) -> None:
    out = enricher.enrich(rec("192.0.2.10", cn="owa.ziekenhuis-voorbeeld.nl"))
    att = out["attribution"]
    assert (att["matched_by"], att["value"], att["confidence"]) == (
        "cert_cn",
        "owa.ziekenhuis-voorbeeld.nl",
        "high",
    )
    assert att["suffix"] == "ziekenhuis-voorbeeld.nl"
    assert (out["organisation"], out["sector"], out["contact"]) == (
        "Ziekenhuis Voorbeeld",
        "health",
        "ict@ziekenhuis.example",
    )
    assert (out["asn"], out["as_name"], out["hoster"]) == (64500, "HOSTER-AS", "Hoster Voorbeeld")
    assert out["domains"] == ["ziekenhuis-voorbeeld.nl"]


def test_ntlm_ad_domain(enricher: Enricher) -> None:
    out = enricher.enrich(rec("192.0.2.11", ntlm_domain="corp.hopital.local"))
    assert out["attribution"]["matched_by"] == "ntlm_dns_domain"
    assert (out["organisation"], out["sector"], out["language"]) == (
        "Hôpital Exemple",
        "health",
        "fr",
    )


def test_scanned_hostname_counts_as_evidence(enricher: Enricher) -> None:
    out = enricher.enrich(rec("203.0.113.4", hostname="webmail.voorbeeld.nl"))
    assert out["attribution"]["matched_by"] == "hostname"
    assert out["organisation"] == "Gemeente Voorbeeld"


def test_asn_marks_the_hoster_before_keywords(enricher: Enricher) -> None:
    out = enricher.enrich(rec("192.0.2.12", cn="mail.politie.nl"))
    att = out["attribution"]
    assert (att["matched_by"], att["value"], att["confidence"], att["hoster"]) == (
        "asn",
        "AS64500",
        "low",
        True,
    )
    assert (out["organisation"], out["sector"]) == ("Hoster Voorbeeld", "digital-infrastructure")
    keyword = out["candidates"][0]
    assert (keyword["matched_by"], keyword["rule"], keyword["sector"]) == (
        "keyword",
        "police-domain-suffix",
        "police",
    )


def test_keyword_rules_when_nothing_else_matches(enricher: Enricher) -> None:
    out = enricher.enrich(rec("203.0.113.5", cn="mail.politie.nl"))
    att = out["attribution"]
    assert (att["matched_by"], att["rule"], att["confidence"], att["evidence_kind"]) == (
        "keyword",
        "police-domain-suffix",
        "high",
        "cert_cn",
    )
    assert (out["organisation"], out["sector"], out["hoster"]) == ("politie.nl", "police", None)
    assert out["attribution"]["source"] == "sector_rules.yaml"


def test_no_evidence_is_unknown(enricher: Enricher) -> None:
    out = enricher.enrich(rec("203.0.113.6"))
    assert (out["organisation"], out["sector"], out["attribution"], out["candidates"]) == (
        None,
        "unknown",
        None,
        [],
    )
    assert (out["domains"], out["evidence"], out["ptr"]) == ([], [], None)


def test_conflicting_evidence_lowers_confidence(enricher: Enricher) -> None:
    out = enricher.enrich(
        rec(
            "203.0.113.7",
            cn="mail.voorbeeld.nl",
            san=["mail.voorbeeld.nl", "owa.ziekenhuis-voorbeeld.nl"],
        )
    )
    att = out["attribution"]
    assert (att["matched_by"], att["confidence"], att["conflicts"]) == (
        "cert_cn",
        "medium",
        ["Ziekenhuis Voorbeeld"],
    )
    assert out["candidates"][0]["organisation"] == "Ziekenhuis Voorbeeld"


def test_shared_certificate_is_medium(enricher: Enricher) -> None:
    sans = ["mail.voorbeeld.nl"] + [f"mail.tenant{i}.example" for i in range(8)]
    out = enricher.enrich(rec("203.0.113.8", cn="mail.voorbeeld.nl", san=sans))
    assert out["attribution"]["confidence"] == "medium"
    assert len(out["domains"]) == 9


def test_hostile_records_do_not_crash(enricher: Enricher) -> None:
    records: list[dict[str, Any]] = [
        {"ip": 5, "tls": "x", "ntlm": 3},
        {"ip": "999.1.1.1", "tls": {"san": [None, "\x00evil"]}},
        {},
    ]
    outs = enricher.enrich_batch(records)
    assert [o["sector"] for o in outs] == ["unknown"] * 3
    assert all(o["country"] is None for o in outs)
    json.dumps(outs)


def test_batch_keeps_order_and_is_json(enricher: Enricher) -> None:
    records = [rec("198.51.100.1"), rec("203.0.113.5", cn="mail.politie.nl"), rec("8.8.8.8")]
    outs = enricher.enrich_batch(records)
    assert [o["sector"] for o in outs] == ["municipality", "police", "unknown"]
    assert outs[2]["country"] == "US"
    assert json.loads(json.dumps(outs)) == outs


def test_forward_confirmed_ptr_is_evidence(hoster_asn: Path) -> None:
    ptr = {"203.0.113.20": "mx.voorbeeld.nl", "203.0.113.21": "mail.voorbeeld.nl"}
    fwd = {"mx.voorbeeld.nl": ["203.0.113.20"], "mail.voorbeeld.nl": ["198.51.100.5"]}

    async def reverse(ip: str) -> str | None:
        if ip not in ptr:
            raise LookupFailed("NXDOMAIN")
        return ptr[ip]

    async def forward(name: str) -> list[str]:
        return fwd.get(name, [])

    enricher = Enricher(
        constituency=FIXTURES / "constituency.csv",
        rdns=True,
        auto_detect=False,
        resolver=Resolver(reverse, forward),
    )
    confirmed, lying, none = asyncio.run(
        enricher.enrich_many([rec("203.0.113.20"), rec("203.0.113.21"), rec("203.0.113.22")])
    )
    assert confirmed["attribution"]["matched_by"] == "ptr"
    assert confirmed["attribution"]["confidence"] == "medium"
    assert confirmed["organisation"] == "Gemeente Voorbeeld"
    assert confirmed["ptr"] == {"name": "mx.voorbeeld.nl", "status": "confirmed"}
    assert lying["ptr"] == {"name": "mail.voorbeeld.nl", "status": "unconfirmed"}
    assert lying["sector"] == "unknown"
    assert none["ptr"] == {"name": None, "status": "no-ptr"}


def test_rdns_off_sends_nothing() -> None:
    async def refuse(_: str) -> Any:
        raise AssertionError("resolver used although rdns is off")

    enricher = Enricher(auto_detect=False, resolver=Resolver(refuse, refuse))
    (out,) = asyncio.run(enricher.enrich_many([rec("203.0.113.20")]))
    assert out["ptr"] is None


def test_bad_constituency_path() -> None:
    with pytest.raises(DataError, match=r"bad_sector\.csv:3"):
        Enricher(constituency=FIXTURES / "bad_sector.csv", auto_detect=False)


def test_sources_are_listed(enricher: Enricher) -> None:
    sources = enricher.sources
    assert sources["asn"] is not None
    assert sources["asn"].startswith("GeoLite2-ASN (asn.mmdb")
    assert sources["country"] is not None
    assert sources["country"].startswith("iptocc ")
    assert sources["sector_rules"] == "sector_rules.yaml"
