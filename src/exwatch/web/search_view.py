"""Search: an address, a network, a host name, an organisation, a build or a CVE."""

# SQL here is assembled from fixed column names of this module; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import quote, urlencode

from exwatch.store import Store
from exwatch.web import groups, names

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
    hosts = names.matches(store, scan_id, prefix, pattern, LIMIT) if names.usable(store) else None
    if hosts is None:
        hosts = _host_names(store, scan_id, pattern)
    source, source_params = groups.base_sql(store, scan_id)
    contains = "%" + pattern.removesuffix("%") + "%"
    organisations = store.dicts(
        "SELECT g.country, g.organisation, g.label AS sector, g.hosts, g.exchange, g.vulnerable"
        f" FROM {source} WHERE g.scan_id = ? AND g.level = 'sector_org'"
        f" AND {_lower_like(store, 'g.organisation')}"
        f" ORDER BY g.vulnerable DESC, g.organisation LIMIT {LIMIT}",
        [*source_params, scan_id, contains],
    )
    for org in organisations:
        for key in ("hosts", "exchange", "vulnerable"):
            org[key] = int(org[key] or 0)
    return {"hosts": hosts, "organisations": organisations}


# Matches per name column past which a prefix counts as common: the page then walks the
# scan in address order (matches come early) instead of gathering them by name.
GATHER = 1000


def _lower_like(store: Store, column: str) -> str:
    """`lower(column) LIKE ?` (the pattern lower-case).  PostgreSQL's indexes are on
    lower(column); DuckDB has none and its ILIKE skips building the lower-case copies."""
    if store.dialect.name == "duckdb":
        return f"{column} ILIKE ? ESCAPE '\\'"
    return f"lower({column}) LIKE ? ESCAPE '\\'"


def _host_names(store: Store, scan_id: str, pattern: str) -> list[dict[str, Any]]:
    any_name = " OR ".join(_lower_like(store, c) for c in names.NAME_COLUMNS)
    sql = (
        "SELECT ip, port, hostname, tls_subject_cn AS cert_cn,"
        " ntlm_dns_computer AS ntlm_computer, build, status FROM results"
        f" WHERE scan_id = ? AND ({any_name}){{only}} ORDER BY ip, port LIMIT {LIMIT}"
    )
    params: list[Any] = [scan_id, *[pattern] * len(names.NAME_COLUMNS)]
    if store.dialect.name == "postgresql":
        # In address order the planner walks the whole scan for a rare name; each column's
        # prefix index finds a rare name's rows directly.
        ips: set[str] = set()
        for column in names.NAME_COLUMNS:
            found = store.query(
                f"SELECT ip FROM results WHERE scan_id = ? AND {_lower_like(store, column)}"
                f" LIMIT {GATHER + 1}",
                [scan_id, pattern],
            )
            if len(found) > GATHER:
                break
            ips.update(str(r[0]) for r in found)
        else:
            if not ips:
                return []
            return store.dicts(sql.format(only=" AND ip = ANY(?)"), [*params, sorted(ips)])
    return store.dicts(sql.format(only=""), params)


__all__ = ["GATHER", "LIMIT", "classify", "direct", "text_matches"]
