"""The hosts a scan gives reason to notify, read from the store, and what each one shows.

A host is notifiable when the scan saw on-prem Exchange (`exwatch/onprem.py`, the predicate
every report, export and web page counts with) with at least one `vulnerable` verdict, or
with a compromise state of `compromised`.  Records that mark the address as Exchange Online
(`exchange_online`) or as a look-alike that failed the plausibility checks (`suspect`) are
never notified, whatever else they hold; they are counted by reason.
`undetermined` verdicts are not findings: a message says only what the build proves.

Compromise state is what the opt-in web-shell check (`scan --check webshells`, checks/)
wrote into the record, `record["checks"]["compromise"]` (docs/checks.md):

    {"state": "compromised" | "clean-at-known-paths" | "unknown", "reason": "...",
     "findings": [{"path": "/aspnet_client/shell.aspx", "shape": "...", "evidence": "..."}]}

the same section `report/compromise.py` turns into the `host_checks` rows the reports read.
"""

# SQL here is assembled from fixed column names of this module only; values are bound.

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exwatch.enrich.orgs import DOMAIN_EVIDENCE_ORDER, registered_domain
from exwatch.model import Verdict
from exwatch.notify.contacts import HostKeys
from exwatch.onprem import on_prem
from exwatch.store import Store

COMPROMISED = "compromised"
COMPROMISE_FINDING = "compromise"
COMPROMISE_STATES = ("compromised", "clean-at-known-paths", "unknown")
_MAX_INDICATORS = 10


@dataclass(frozen=True, slots=True)
class Indicator:
    path: str | None
    evidence: str | None
    rule: str | None


@dataclass(frozen=True, slots=True)
class Compromise:
    state: str
    indicators: tuple[Indicator, ...] = ()
    checked_at: str | None = None


def compromise_of(record: Mapping[str, Any]) -> Compromise | None:
    """The web-shell check's state in the record, or None when it did not run (or the value
    is unreadable).  Records come from files: every field is checked for its type."""
    checks = record.get("checks")
    value = checks.get("compromise") if isinstance(checks, Mapping) else None
    if not isinstance(value, Mapping):
        return None
    state = value.get("state")
    if state not in COMPROMISE_STATES:
        return None
    found: list[Indicator] = []
    raw = value.get("findings")
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, Mapping):
            # What the shape is (our data) and what the server showed of it (its text).
            said = [t for t in (_str(item.get("title")), _str(item.get("evidence"))) if t]
            evidence = ": ".join(said) or None
            found.append(Indicator(_str(item.get("path")), evidence, _str(item.get("shape"))))
        if len(found) >= _MAX_INDICATORS:
            break
    # The checks ran within the host's slot: the record's time is when they looked.
    return Compromise(str(state), tuple(found), _str(record.get("timestamp")))


def mitigated_of(record: Mapping[str, Any]) -> tuple[str, ...]:
    """The record's CVEs with the verdict `mitigated`, sorted."""
    cves = record.get("cves")
    if not isinstance(cves, Mapping):
        return ()
    return tuple(sorted(str(c) for c, v in cves.items() if v == Verdict.MITIGATED.value))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Host:
    """One notifiable host of one scan."""

    scan_id: str
    ip: str
    port: int
    seen_at: datetime
    hostname: str | None  # the scanned name, else a confirmed PTR
    certificate_name: str | None
    country: str | None
    asn: int | None
    organisation: str | None
    sector: str | None
    product: str | None
    build: str | None
    cu: str | None
    su: str | None
    precision: str | None
    eol: bool | None
    vulnerable_cves: tuple[str, ...]
    compromise: Compromise | None
    keys: HostKeys = field(repr=False, compare=False)
    # CVEs whose verdict is `mitigated` (a mitigation seen on a vulnerable build, opt-in
    # checks): shown apart in the message; not findings, the update is still to install.
    mitigated_cves: tuple[str, ...] = ()

    @property
    def findings(self) -> tuple[str, ...]:
        """What a message reports and a case tracks: vulnerable CVEs, and `compromise`."""
        extra = (
            (COMPROMISE_FINDING,)
            if self.compromise is not None and self.compromise.state == COMPROMISED
            else ()
        )
        return (*self.vulnerable_cves, *extra)

    @property
    def address(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def host_keys(ip: str, asn: int | None, answer: Mapping[str, Any]) -> HostKeys:
    """Names and trusted domains for contact resolution, from the enricher's answer."""
    names: list[tuple[int, str]] = []
    trusted: list[str] = []
    order = {kind: i for i, kind in enumerate(DOMAIN_EVIDENCE_ORDER)}
    evidence = answer.get("evidence")
    for item in evidence if isinstance(evidence, list) else []:
        if not isinstance(item, Mapping):
            continue
        kind, value = item.get("kind"), item.get("value")
        if kind not in order or not isinstance(value, str):
            continue
        names.append((order[kind], value))
        domain = item.get("registered_domain")
        # The scanned hostname is the CERT's own input; a forward-confirmed PTR is vouched for
        # by both the address holder and the domain.  Certificate and NTLM names are not.
        if isinstance(domain, str) and (
            kind == "hostname" or (kind == "ptr" and item.get("confirmed") is True)
        ):
            trusted.append(domain)
    attribution = answer.get("attribution")
    if isinstance(attribution, Mapping) and isinstance(attribution.get("suffix"), str):
        suffix = str(attribution["suffix"])
        trusted.insert(0, registered_domain(suffix) or suffix)
    names.sort(key=lambda pair: pair[0])
    return HostKeys(
        ip=ip,
        asn=asn,
        names=tuple(dict.fromkeys(n for _, n in names)),
        trusted_domains=tuple(dict.fromkeys(trusted)),
        enrichment=answer,
    )


@dataclass
class Skipped:
    """Hosts of the scan left out before contacts are looked at, by reason."""

    exchange_online: int = 0
    suspect: int = 0
    unreadable: int = 0


_SELECT = """
SELECT e.ip, e.port, r.ts, r.hostname, e.ptr, r.tls_subject_cn, e.country, e.asn,
       e.organisation, e.sector, e.product, e.build, e.cu, r.su, r.precision, e.eol,
       e.is_exchange, e.vulnerable, e.vulnerable_cves, r.record, e.evidence
FROM enrichment e JOIN results r
  ON r.scan_id = e.scan_id AND r.ip = e.ip AND r.port = e.port AND r.ts = e.ts
WHERE e.scan_id = ?
  AND (e.vulnerable OR CAST(r.record AS TEXT) LIKE '%"compromise"%')
ORDER BY e.ip_sort, e.port
"""


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def notifiable_hosts(store: Store, scan_id: str, skipped: Skipped | None = None) -> Iterator[Host]:
    """The scan's hosts with something to report, in address order."""
    tally = skipped if skipped is not None else Skipped()
    for row in store.stream(_SELECT, [scan_id]):
        (ip, port, ts, hostname, ptr, cert_cn, country, asn, organisation, sector, product,
         build, cu, su, precision, eol, is_exchange, vulnerable, cves, record_text,
         evidence_text) = row  # fmt: skip
        record = _json(record_text)
        if not isinstance(record, dict):
            tally.unreadable += 1
            continue
        # is_exchange is on_prem(record) as the store wrote it; the record says why not.
        if not is_exchange or not on_prem(record):
            if record.get("exchange_online"):
                tally.exchange_online += 1
            elif record.get("suspect"):
                tally.suspect += 1
            continue
        compromise = compromise_of(record)
        vulnerable_cves = tuple(sorted(cves or ())) if vulnerable else ()
        if not vulnerable_cves and (compromise is None or compromise.state != COMPROMISED):
            continue  # the LIKE prefilter matched text elsewhere in the record
        answer = _json(evidence_text)
        answer = answer if isinstance(answer, dict) else {}
        yield Host(
            scan_id=scan_id,
            ip=str(ip),
            port=int(port),
            seen_at=_timestamp(ts),
            hostname=hostname if isinstance(hostname, str) and hostname else ptr,
            certificate_name=cert_cn,
            country=country,
            asn=int(asn) if asn is not None else None,
            organisation=organisation,
            sector=sector,
            product=product,
            build=build,
            cu=cu,
            su=su,
            precision=precision,
            eol=eol,
            vulnerable_cves=vulnerable_cves,
            compromise=compromise,
            keys=host_keys(str(ip), int(asn) if asn is not None else None, answer),
            mitigated_cves=mitigated_of(record),
        )


__all__ = [
    "COMPROMISED",
    "COMPROMISE_FINDING",
    "Compromise",
    "Host",
    "Indicator",
    "Skipped",
    "compromise_of",
    "host_keys",
    "mitigated_of",
    "notifiable_hosts",
]
