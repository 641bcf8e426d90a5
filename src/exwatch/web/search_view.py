"""Search: an address, a network, a host name, an organisation, a build or a CVE."""

# SQL here is assembled from fixed column names of this module; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import quote, urlencode

from exwatch.store import Store
from exwatch.web import groups

_BUILD = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,5}(?:\.\d{1,5})?")
_CVE = re.compile(r"CVE-\d{4}-\d{4,7}", re.IGNORECASE)
_ASN = re.compile(r"AS(\d{1,10})", re.IGNORECASE)
LIMIT = 50


def classify(text: str) -> tuple[str, str]:
    """(kind, normalised value): ip, cidr, build, cve, asn or text."""
    value = text.strip()
    try:
        return "ip", str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if "/" in value:
        try:
            return "cidr", str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            pass
    if _CVE.fullmatch(value):
        return "cve", value.upper()
    if _BUILD.fullmatch(value):
        return "build", value
    if m := _ASN.fullmatch(value):
        return "asn", m.group(1)
    return "text", value


def direct(kind: str, value: str, scan_id: str) -> str | None:
    """Where a search for an address, network, build, CVE or AS goes straight to."""
    scan = {"scan": scan_id}
    if kind == "ip":
        return f"/hosts/{quote(value, safe='')}"
    if kind == "cidr":
        return "/hosts?" + urlencode({**scan, "cidr": value, "show": "all"})
    if kind == "build":
        return "/hosts?" + urlencode({**scan, "build": value})
    if kind == "cve":
        return f"/cves/{quote(value, safe='')}"
    if kind == "asn":
        return "/hosts?" + urlencode({**scan, "asn": value, "show": "all"})
    return None


def text_matches(store: Store, scan_id: str, text: str) -> dict[str, list[dict[str, Any]]]:
    """Host names (target name, certificate CN, NTLM computer) starting with the text, and
    organisations containing it, in one scan."""
    prefix = text.strip().lower()
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    hosts = store.dicts(
        "SELECT ip, port, hostname, tls_subject_cn AS cert_cn,"
        " ntlm_dns_computer AS ntlm_computer, build, status FROM results"
        " WHERE scan_id = ? AND (lower(hostname) LIKE ? ESCAPE '\\'"
        " OR lower(tls_subject_cn) LIKE ? ESCAPE '\\'"
        " OR lower(ntlm_dns_computer) LIKE ? ESCAPE '\\')"
        f" ORDER BY ip, port LIMIT {LIMIT}",
        [scan_id, pattern, pattern, pattern],
    )
    source, source_params = groups.base_sql(store, scan_id)
    contains = "%" + pattern.removesuffix("%") + "%"
    organisations = store.dicts(
        "SELECT g.country, g.organisation, g.label AS sector, g.hosts, g.exchange, g.vulnerable"
        f" FROM {source} WHERE g.scan_id = ? AND g.level = 'sector_org'"
        " AND lower(g.organisation) LIKE ? ESCAPE '\\'"
        f" ORDER BY g.vulnerable DESC, g.organisation LIMIT {LIMIT}",
        [*source_params, scan_id, contains],
    )
    for org in organisations:
        for key in ("hosts", "exchange", "vulnerable"):
            org[key] = int(org[key] or 0)
    return {"hosts": hosts, "organisations": organisations}


__all__ = ["LIMIT", "classify", "direct", "text_matches"]
