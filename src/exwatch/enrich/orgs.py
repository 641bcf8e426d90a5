"""Organisation evidence taken from a scan record: names a server discloses about its owner.

Sources, strongest first: the TLS certificate subject CN and SANs (usually mail.<org domain>), the
AD domain NTLM discloses (dns_domain / dns_tree), a forward-confirmed PTR name (see rdns.py) and the
hostname the user scanned.  Every name is reduced to its registered domain with the public suffix
list.  All of it is attacker-controlled text: names are validated as DNS names (anything else is
dropped) and the number taken from one certificate is capped.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from publicsuffixlist import PublicSuffixList

EvidenceKind = Literal["cert_cn", "cert_san", "ntlm_dns_domain", "ptr", "hostname", "cert_org"]

# Order in which domain evidence is trusted when two kinds point at different organisations.
DOMAIN_EVIDENCE_ORDER: tuple[EvidenceKind, ...] = (
    "cert_cn",
    "cert_san",
    "ntlm_dns_domain",
    "ptr",
    "hostname",
)

# A shared-hosting certificate can carry hundreds of SANs; the first ones are enough to attribute.
MAX_SANS = 50
# More distinct registered domains than this on one certificate suggests a shared certificate.
SHARED_CERT_DOMAINS = 5

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_ORG_IN_DN = re.compile(r"(?:^|[,/;+])\s*O\s*=\s*((?:\\.|[^,/;+])+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One name that points at the organisation running the server."""

    kind: EvidenceKind
    value: str  # normalised DNS name, or for cert_org the organisation name as given
    registered_domain: str | None
    field: str  # where in the record it was found, e.g. "tls.san", "ntlm.dns_tree"
    confirmed: bool = False  # True only for a forward-confirmed PTR

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "registered_domain": self.registered_domain,
            "field": self.field,
            "confirmed": self.confirmed,
        }

    @property
    def is_domain(self) -> bool:
        return self.kind != "cert_org"


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    # Loading parses the bundled list (~30 ms): once per process.
    return PublicSuffixList()


def public_suffix_list_version() -> str:
    from importlib.metadata import version

    return f"publicsuffixlist {version('publicsuffixlist')}"


@lru_cache(maxsize=65536)
def normalise_hostname(raw: str) -> str | None:
    """A lower-case ASCII DNS name with at least two labels, or None when `raw` is not one.

    Drops a trailing dot and a leading wildcard label; converts IDNs to punycode; rejects IP
    addresses, single labels (NetBIOS names, "localhost") and anything with other characters.
    """
    name = raw.strip().rstrip(".").lower()
    if name.startswith("dns:"):
        name = name[4:].strip()
    if name.startswith("*."):
        name = name[2:]
    if not name or len(name) > 253:
        return None
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None


@lru_cache(maxsize=65536)
def registered_domain(name: str) -> str | None:
    """Registrable domain of a normalised name (mail.x.gov.uk -> x.gov.uk); None for a suffix."""
    result = _psl().privatesuffix(name)
    return result if isinstance(result, str) else None


def domain_evidence(kind: EvidenceKind, raw: object, field: str) -> Evidence | None:
    if not isinstance(raw, str):
        return None
    return _domain_evidence(kind, raw, field)


@lru_cache(maxsize=131072)
def _domain_evidence(kind: EvidenceKind, raw: str, field: str) -> Evidence | None:
    # One certificate or AD domain shows up on many hosts: Evidence is immutable, share it.
    name = normalise_hostname(raw)
    if name is None:
        return None
    return Evidence(kind, name, registered_domain(name), field)


def organisation_from_subject(subject: object) -> str | None:
    """The O= value of a certificate subject given as an RFC 4514 / OpenSSL string or a mapping."""
    value: object = None
    if isinstance(subject, Mapping):
        value = subject.get("O", subject.get("organizationName"))
        if isinstance(value, list) and value:
            value = value[0]
    elif isinstance(subject, str):
        found = _ORG_IN_DN.search(subject)
        value = found.group(1).replace("\\", "") if found else None
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())[:200]
    return text or None


def fold_text(text: str) -> str:
    """Case- and accent-folded text for keyword matching ("Hôpital" -> "hopital")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def evidence_from_record(record: Mapping[str, Any]) -> list[Evidence]:
    """All organisation evidence in one scan record, strongest kind first, without duplicates."""
    found: list[Evidence] = []
    tls = record.get("tls")
    if isinstance(tls, Mapping):
        cn = domain_evidence("cert_cn", tls.get("subject_cn"), "tls.subject_cn")
        if cn is not None:
            found.append(cn)
        sans = tls.get("san")
        if isinstance(sans, list):
            for san in sans[:MAX_SANS]:
                ev = domain_evidence("cert_san", san, "tls.san")
                if ev is not None:
                    found.append(ev)
    ntlm = record.get("ntlm")
    if isinstance(ntlm, Mapping):
        for key in ("dns_domain", "dns_tree"):
            ev = domain_evidence("ntlm_dns_domain", ntlm.get(key), f"ntlm.{key}")
            if ev is not None:
                found.append(ev)
    hostname = domain_evidence("hostname", record.get("hostname"), "hostname")
    if hostname is not None:
        found.append(hostname)
    if isinstance(tls, Mapping):
        org = organisation_from_subject(tls.get("subject"))
        if org is not None:
            found.append(Evidence("cert_org", org, None, "tls.subject"))
    return _unique(found)


def ptr_evidence(name: str) -> Evidence | None:
    """Evidence for a PTR name that resolved forward to the scanned address."""
    normal = normalise_hostname(name)
    if normal is None:
        return None
    return Evidence("ptr", normal, registered_domain(normal), "ptr", confirmed=True)


def _unique(items: list[Evidence]) -> list[Evidence]:
    seen: set[tuple[str, str]] = set()
    out: list[Evidence] = []
    for ev in items:
        key = (ev.kind, ev.value)
        # The same name as CN and SAN is one piece of evidence: keep the CN.
        if ev.kind == "cert_san" and ("cert_cn", ev.value) in seen:
            continue
        if key not in seen:
            seen.add(key)
            out.append(ev)
    return out


def registered_domains(evidence: list[Evidence]) -> list[str]:
    """Distinct registered domains in evidence order."""
    out: dict[str, None] = {}
    for ev in evidence:
        if ev.registered_domain is not None:
            out.setdefault(ev.registered_domain, None)
    return list(out)


def is_shared_certificate(evidence: list[Evidence]) -> bool:
    cert_domains = {
        ev.registered_domain
        for ev in evidence
        if ev.kind in ("cert_cn", "cert_san") and ev.registered_domain is not None
    }
    return len(cert_domains) > SHARED_CERT_DOMAINS


def suffixes_of(name: str) -> list[str]:
    """`name` and each parent domain, most specific first (a.b.c -> a.b.c, b.c, c)."""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


__all__ = [
    "DOMAIN_EVIDENCE_ORDER",
    "Evidence",
    "EvidenceKind",
    "domain_evidence",
    "evidence_from_record",
    "fold_text",
    "is_shared_certificate",
    "normalise_hostname",
    "organisation_from_subject",
    "ptr_evidence",
    "public_suffix_list_version",
    "registered_domain",
    "registered_domains",
    "suffixes_of",
]
