"""Host tables (any filter of one scan's answering hosts) and the page of one address."""

# SQL here is assembled from fixed column names of this module; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from exwatch.errors import UsageError
from exwatch.knowledge.catalogue import default
from exwatch.onprem import on_prem_sql
from exwatch.store import Store
from exwatch.store.rows import ip_sort_key
from exwatch.web import groups
from exwatch.web.facts import kev_list, lag_values, scan_builds
from exwatch.web.groups_view import NONE, asn_value, country_value, equals
from exwatch.web.listing import Column, Joined, Listing, Paging, fetch, like

SHOW = ("exchange", "all", "vulnerable", "kev", "eol")
# The web-shell check's states (docs/checks.md), for the `compromise` filter.
COMPROMISE = ("compromised", "unknown", "clean-at-known-paths")


def host_columns(compromise: bool) -> list[Column]:
    cols = [
        Column("ip", "Address", "text", "e.ip_sort"),
        Column("port", "Port", "int", "e.port"),
        Column("hostname", "Host name", raw=True),
        Column("country", "Country", "text", "e.country"),
        Column("asn", "AS", "int", "e.asn"),
        Column("organisation", "Organisation", "text", "e.organisation", raw=True),
        Column("sector", "Sector", "text", "e.sector"),
        Column("build", "Build", "text", "e.build", raw=True),
        Column("product", "Product", "text", "e.product"),
        Column("cu", "CU", "text", "e.cu"),
        Column("vulnerable", "Vulnerable", "bool", "e.vulnerable"),
        Column("kev", "KEV", "bool", "kev"),
        Column("eol", "End of life", "bool", "e.eol"),
        Column("vulnerable_cves", "Vulnerable CVEs", "int", "vulnerable_cves"),
        Column("days_behind", "Days behind", "int", "lag.days"),
        Column("sus_behind", "Updates behind", "int", "lag.sus"),
        Column("cert_cn", "Certificate CN", raw=True),
        Column("ntlm_computer", "NTLM computer", raw=True),
        Column("x_feserver", "X-FEServer", raw=True, hidden=True),
        Column("scan_id", "Scan", hidden=True),
    ]
    if compromise:
        cols.insert(13, Column("compromise", "Compromise", "text", "h.compromise"))
    return cols


def cidr_range(text: str) -> tuple[str, str]:
    """The ip_sort keys of the first and last address of a network."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise UsageError(f"not a network: {text[:60]!r} (e.g. 193.190.0.0/16)") from None
    return ip_sort_key(str(net.network_address)), ip_sort_key(str(net.broadcast_address))


def host_listing(store: Store, scan_id: str, query: Mapping[str, str]) -> Listing:
    d = store.dialect
    compromise = groups.has_checks(store, scan_id)
    columns = host_columns(compromise)
    paging = Paging.from_query(query, None)
    where = ["e.scan_id = ?"]
    params: list[Any] = [scan_id]
    filters: dict[str, str] = {}
    show = query.get("show") or "exchange"
    if show not in SHOW:
        raise UsageError(f"show is one of {', '.join(SHOW)}")
    filters["show"] = show
    if show != "all":
        where.append(on_prem_sql("e"))
    if show == "vulnerable":
        where.append("e.vulnerable")
    elif show == "eol":
        where.append("e.eol")
    elif show == "kev":
        where.append(f"e.vulnerable AND {d.array_overlaps('e.vulnerable_cves')}")
        params.append(kev_list())
    for name, column in (
        ("country", "e.country"),
        ("asn", "e.asn"),
        ("sector", "e.sector"),
        ("organisation", "e.organisation"),
    ):
        value = query.get(name)
        if value is None or value == "":
            continue
        if name == "country":
            value = country_value(value)
        elif name == "asn":
            value = asn_value(value)
        clause, args = equals(column, value)
        where.append(clause)
        params += [int(a) for a in args] if name == "asn" else args
        filters[name] = value
    state = (query.get("compromise") or "").strip()
    if state:
        if state not in COMPROMISE:
            raise UsageError(f"compromise is one of {', '.join(COMPROMISE)}")
        # Where no host was checked, none shows a state.
        where.append("h.compromise = ?" if compromise else "FALSE")
        params += [state] if compromise else []
        filters["compromise"] = state
    cve = (query.get("cve") or "").strip().upper()
    if cve:
        where.append(d.array_contains("e.vulnerable_cves"))
        params.append(cve)
        filters["cve"] = cve
    build = (query.get("build") or "").strip()
    if build:
        where.append("e.build = ?")
        params.append(build)
        filters["build"] = build
    cidr = (query.get("cidr") or "").strip()
    if cidr:
        low, high = cidr_range(cidr)
        where.append("e.ip_sort BETWEEN ? AND ?")
        params += [low, high]
        filters["cidr"] = cidr
    text = (query.get("q") or "").strip()
    if text:
        where.append(
            "(e.ip ILIKE ? ESCAPE '\\' OR e.build ILIKE ? ESCAPE '\\'"
            " OR e.organisation ILIKE ? ESCAPE '\\' OR e.ptr ILIKE ? ESCAPE '\\')"
        )
        params += [like(text)] * 4
        filters["q"] = text
    total = known_total(store, scan_id, filters)
    stamp = groups.stamp_of(store, scan_id)
    lag, lag_params = lag_values(scan_builds(store, scan_id, stamp))
    extra = ", h.compromise" if compromise else ""
    select = (
        "e.ip, e.port, e.country, e.asn, e.organisation, e.sector, e.build, e.product, e.cu,"
        f" e.vulnerable, coalesce(e.vulnerable AND {d.array_overlaps('e.vulnerable_cves')},"
        f" FALSE) AS kev, e.eol, {d.array_len('e.vulnerable_cves')} AS vulnerable_cves,"
        f" lag.days AS days_behind, lag.sus AS sus_behind, e.ts, e.scan_id{extra}"
    )
    columns_sort = {c.key: c for c in columns}
    columns_sort["kev"] = Column("kev", "KEV", "bool", "kev")
    columns_sort["vulnerable_cves"] = Column(
        "vulnerable_cves", "Vulnerable CVEs", "int", d.array_len("e.vulnerable_cves")
    )
    joins = f"LEFT JOIN {lag} ON lag.build = e.build" + (groups.CHECKS_JOIN if compromise else "")
    joined = Joined("enrichment e", "e", joins, lag_params)
    listing = fetch(
        store,
        columns=list(columns_sort.values()),
        select=select,
        source=joined.source,
        source_params=joined.params,
        select_params=[kev_list()],
        where=where,
        params=params,
        paging=paging,
        tiebreak="e.ip_sort, e.port",
        filters=filters,
        total=total,
        joined=joined,
        count_key=("hosts-total", store.location, scan_id, stamp),
    )
    listing.columns = columns
    _add_server_fields(store, scan_id, listing.rows)
    return listing


_LEVEL_OF = {
    frozenset({"country"}): "country",
    frozenset({"country", "asn"}): "asn",
    frozenset({"country", "sector"}): "sector",
    frozenset({"country", "asn", "organisation"}): "asn_org",
    frozenset({"country", "sector", "organisation"}): "sector_org",
}
_COUNT_OF = {"all": "hosts", "exchange": "exchange", "vulnerable": "vulnerable", "kev": "kev",
             "eol": "eol"}  # fmt: skip


def known_total(store: Store, scan_id: str, filters: Mapping[str, str]) -> int | None:
    """The number of hosts a drill-down filter matches, read from the scan's drill-down
    counts instead of counted (a country can hold millions); None for other filters."""
    keys = frozenset(filters) - {"show"}
    level = _LEVEL_OF.get(keys)
    if not keys:
        level = "country"
    if level is None:
        return None
    source, source_params = groups.base_sql(store, scan_id)
    where = ["g.scan_id = ?", "g.level = ?"]
    params: list[Any] = [scan_id, level]
    for key in ("country", "asn", "sector", "organisation"):
        if key in filters:
            clause, args = equals(f"g.{key}", filters[key])
            where.append(clause)
            params += [int(a) for a in args] if key == "asn" else args
    value = store.scalar(
        f"SELECT coalesce(sum(g.{_COUNT_OF[filters.get('show', 'exchange')]}), 0)"
        f" FROM {source} WHERE {' AND '.join(where)}",
        [*source_params, *params],
    )
    return int(value or 0)


def _add_server_fields(store: Store, scan_id: str, rows: list[dict[str, Any]]) -> None:
    """Host name, certificate and NTLM names of the rows shown (from `results`)."""
    if not rows:
        return
    ips = sorted({str(r["ip"]) for r in rows})
    where, args = store.dialect.in_list("ip", ips)
    found: dict[tuple[str, int, Any], dict[str, Any]] = {}
    for item in store.dicts(
        "SELECT ip, port, ts, hostname, tls_subject_cn AS cert_cn,"
        " coalesce(ntlm_netbios_computer, ntlm_dns_computer) AS ntlm_computer, x_feserver"
        f" FROM results WHERE scan_id = ? AND {where}",
        [scan_id, *args],
    ):
        found[(str(item["ip"]), int(item["port"]), item["ts"])] = item
    for row in rows:
        extra = found.get((str(row["ip"]), int(row["port"]), row.pop("ts")), {})
        for key in ("hostname", "cert_cn", "ntlm_computer", "x_feserver"):
            row[key] = extra.get(key)
        row["vulnerable_cves"] = int(row["vulnerable_cves"] or 0)
        if row.get("asn") is not None:
            row["asn"] = int(row["asn"])


def _record(text: Any) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def host_detail(store: Store, ip: str) -> dict[str, Any]:
    """Every scan of one address: status, evidence, verdicts with basis and reasons."""
    try:
        address = str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        raise UsageError(f"not an IP address: {ip[:60]!r}") from None
    d = store.dialect
    scans = store.dicts(
        f"SELECT r.scan_id, r.port, {d.iso('r.ts', micro=True)} AS ts, r.status, r.error,"
        " r.hostname, r.record, s.started_at AS scan_started"
        " FROM results r LEFT JOIN scans s ON s.scan_id = r.scan_id"
        " WHERE r.ip = ? ORDER BY r.ts DESC, r.port",
        [address],
    )
    enriched = {
        (str(e["scan_id"]), int(e["port"])): e
        for e in store.dicts(
            "SELECT scan_id, port, country, country_source, asn, as_name, asn_source,"
            " organisation, sector, matched_by, confidence, ptr FROM enrichment WHERE ip = ?",
            [address],
        )
    }
    catalogue = default()
    kev = catalogue.kev_cves()
    sightings = []
    for row in scans:
        record = _record(row.pop("record"))
        row.pop("scan_started", None)
        exchange = record.get("exchange") if isinstance(record.get("exchange"), dict) else None
        basis = (exchange or {}).get("basis") or {}
        raw_cves = record.get("cves")
        cves: dict[str, Any] = raw_cves if isinstance(raw_cves, dict) else {}
        verdicts = []
        for cve_id, verdict in sorted(
            cves.items(), key=lambda kv: (_VERDICT_ORDER.get(str(kv[1]), 9), str(kv[0]))
        ):
            known = catalogue._cve_index.get(str(cve_id))
            verdicts.append(
                {
                    "cve": str(cve_id),
                    "verdict": str(verdict),
                    "kev": str(cve_id) in kev,
                    "basis": basis.get(cve_id) if isinstance(basis, dict) else None,
                    "title": known.title if known else None,
                    "cvss": known.cvss if known else None,
                    "sources": [catalogue.source_ref(s, known.id) for s in known.sources]
                    if known
                    else [],
                }
            )
        row["enrichment"] = enriched.get((str(row["scan_id"]), int(row["port"])))
        if row["enrichment"] and row["enrichment"].get("asn") is not None:
            row["enrichment"]["asn"] = int(row["enrichment"]["asn"])
        if exchange is not None:
            # Records from older or other writers may lack keys the page reads.
            exchange = {**dict.fromkeys(_EXCHANGE_KEYS), **exchange}
            if not isinstance(exchange.get("patch_lag"), dict):
                exchange["patch_lag"] = None
        row["exchange"] = exchange
        row["verdicts"] = verdicts
        row["tls"] = record.get("tls") if isinstance(record.get("tls"), dict) else None
        row["ntlm"] = record.get("ntlm") if isinstance(record.get("ntlm"), dict) else None
        headers = record.get("headers")
        row["headers"] = headers if isinstance(headers, dict) else {}
        row["http_status"] = record.get("http_status")
        row["checks"] = checks_of(record)
        # Keys a later exwatch adds (probe observations) are shown too.
        known_keys = {
            "schema_version", "ip", "port", "hostname", "timestamp", "duration_ms", "status",
            "error", "exchange", "cves", "tls", "ntlm", "headers", "http_status", "scan_id",
            "shard", *(("checks",) if row["checks"] is not None else ()),
        }  # fmt: skip
        row["other"] = {k: v for k, v in record.items() if k not in known_keys}
        sightings.append(row)
    return {
        "ip": address,
        "sightings": sightings,
        "notifications": notifications_for(store, address),
    }


def _texts(value: object) -> str | None:
    return value if isinstance(value, str) else None


def checks_of(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the opt-in checks (`scan --check`) found on this host, as the page shows it:
    the web-shell judgement with each finding's evidence, the behavioural readings, and
    the verdicts they settled or contradicted; None where no check ran.  Every value is
    the record's (a file): checked for its type; the template escapes the strings."""
    checks = record.get("checks")
    if not isinstance(checks, Mapping) or not isinstance(checks.get("ran"), list):
        return None
    ran = [c for c in checks["ran"] if isinstance(c, str)]
    if not ran:
        return None
    raw = checks.get("compromise")
    judged = raw if isinstance(raw, Mapping) else {}
    findings = judged.get("findings")
    behaviour = checks.get("behaviour")
    settled = checks.get("settled")
    conflicts = checks.get("conflicts")
    return {
        "ran": ran,
        "compromise": _texts(judged.get("state")),
        "reason": _texts(judged.get("reason")),
        "findings": [
            {
                key: f.get(key) if isinstance(f.get(key), str | int) else None
                for key in ("path", "shape", "title", "confidence", "status", "evidence")
            }
            for f in (findings if isinstance(findings, list) else [])
            if isinstance(f, Mapping)
        ],
        "behaviour": [
            {
                "check": str(name),
                "state": _texts(b.get("state")),
                "status": _texts(b.get("status")),
                "evidence": _texts(b.get("evidence")),
            }
            for name, b in (behaviour.items() if isinstance(behaviour, Mapping) else ())
            if isinstance(b, Mapping)
        ],
        "settled": sorted(str(c) for c in settled) if isinstance(settled, Mapping) else [],
        "conflicts": sorted(
            {str(c.get("cve")) for c in conflicts if isinstance(c, Mapping) and c.get("cve")}
        )
        if isinstance(conflicts, list)
        else [],
    }


_EXCHANGE_KEYS = (
    "build", "precision", "product", "cu", "su", "eol", "sources", "builds_seen", "patch_lag",
)  # fmt: skip
_VERDICT_ORDER = {"vulnerable": 0, "undetermined": 1, "mitigated": 2, "patched": 3}


def notifications_for(store: Store, ip: str) -> list[dict[str, Any]]:
    """Notification rows naming this address, when the store has a notifications table."""
    if not store.has_table("notifications"):
        return []
    names = notification_columns(store)
    if "ip" in names:
        where, args = "CAST(ip AS VARCHAR) = ?", [ip]
    elif store.has_table("notification_items"):
        # notify lists each message's hosts as items, one row per (host, finding).
        where = "notification_id IN (SELECT notification_id FROM notification_items WHERE ip = ?)"
        args = [ip]
    elif "hosts" in names:
        where, args = "CAST(hosts AS VARCHAR) LIKE ?", [f'%"{ip}"%']
    else:
        return []
    order = next((c for c in ("sent_at", "created_at", "updated_at") if c in names), names[0])
    rows = store.dicts(
        f"SELECT * FROM notifications WHERE {where} ORDER BY {order} DESC LIMIT 100", args
    )
    return [{k: _plain(v) for k, v in r.items()} for r in rows]


def notification_columns(store: Store) -> list[str]:
    rows = store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'notifications'"
        " AND table_schema = current_schema() ORDER BY ordinal_position"
    )
    return [str(r[0]) for r in rows if str(r[0]).isidentifier()]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


__all__ = [
    "COMPROMISE",
    "NONE",
    "SHOW",
    "checks_of",
    "cidr_range",
    "host_columns",
    "host_detail",
    "host_listing",
    "notification_columns",
    "notifications_for",
]
