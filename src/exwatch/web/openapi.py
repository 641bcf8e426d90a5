"""The OpenAPI 3.1 document of the JSON API (served at /api/openapi.json).

Written out here rather than generated from code so that it says what a CERT's tools may
rely on; tests check every endpoint's answers against it (schemathesis).
"""

# The paths read best with one parameter list per line, however long.
# ruff: noqa: E501

from __future__ import annotations

from typing import Any

from exwatch import __version__
from exwatch.web.cves_view import CVE_COLUMNS
from exwatch.web.groups_view import count_columns
from exwatch.web.hosts_view import COMPROMISE, SHOW, host_columns
from exwatch.web.listing import MAX_PER_PAGE, Column
from exwatch.web.scans_view import CHANGE_COLUMNS, DIFF_COLUMNS, SCAN_COLUMNS

_KIND = {
    "text": {"type": ["string", "null"]},
    "date": {"type": ["string", "null"]},
    "int": {"type": ["integer", "null"]},
    "float": {"type": ["number", "null"]},
    "pct": {"type": ["number", "null"]},
    "bool": {"type": ["boolean", "null"]},
    "list": {"type": ["array", "null"], "items": {"type": "string"}},
}
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CIDR4 = f"^({_OCTET}\\.){{3}}{_OCTET}/(3[0-2]|[12]?[0-9])$"
NULLABLE_STRING = {"type": ["string", "null"]}
COUNTRY = {"type": "string", "pattern": "^([A-Za-z]{2}|~none)$"}


def _row(columns: list[Column]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {c.key: _KIND[c.kind] for c in columns},
        "required": [c.key for c in columns],
    }


def _listing(columns: list[Column], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "total": {"type": "integer", "minimum": 0},
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1},
        "pages": {"type": "integer", "minimum": 1},
        "sort": NULLABLE_STRING,
        "dir": {"enum": ["asc", "desc"]},
        "filters": {"type": "object", "additionalProperties": {"type": "string"}},
        "columns": {"type": "array", "items": {"type": "string"}},
        "rows": {"type": "array", "items": _row(columns)},
        **(extra or {}),
    }
    return {"type": "object", "properties": props, "required": list(props)}


def _param(
    name: str, schema: dict[str, Any], where: str = "query", text: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": text,
    }


SCAN = _param("scan", {"type": "string", "minLength": 1}, text="Scan id (default: the latest)")
Q = _param("q", {"type": "string"}, text="Text filter")
FORMAT = _param("format", {"enum": ["json", "csv"]}, text="csv: the rows shown, as CSV")


def _paging(columns: list[Column]) -> list[dict[str, Any]]:
    sortable = [c.key for c in columns if c.sort]
    return [
        _param("sort", {"enum": sortable}, text="Column to sort by"),
        _param("dir", {"enum": ["asc", "desc"]}),
        _param("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000}),
        _param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}),
    ]


ERROR = {
    "description": "Bad request, unknown item, or the store cannot answer now",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}


def _answer(schema: dict[str, Any], csv: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {
        "200": {"description": "OK", "content": content},
        "400": ERROR,
        "404": ERROR,
        "503": ERROR,
    }


def _get(
    summary: str, params: list[dict[str, Any]], schema: dict[str, Any], csv: bool = False
) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params, "responses": _answer(schema, csv)}}


def document() -> dict[str, Any]:
    counts = count_columns(compromise=False)
    key = {
        "country": [Column("country", "", "text", "x"), Column("name", "", "text")],
        "asn": [Column("asn", "", "int", "x"), Column("as_name", "", "text", "x")],
        "sector": [Column("sector", "", "text", "x")],
        "org": [Column("organisation", "", "text", "x"), Column("sector", "", "text", "x")],
    }
    any_object = {"type": "object"}
    host_cols = host_columns(compromise=False)
    country_path = _param("cc", COUNTRY, "path", "ISO 3166-1 alpha-2, or ~none")
    paths: dict[str, Any] = {
        "/api/overview": _get(
            "Headline counts, per-country counts, trend, CVE and sector counts of a scan",
            [SCAN],
            {
                "type": "object",
                "properties": {
                    "scan": any_object,
                    "scanned": {"type": "integer"},
                    "totals": any_object,
                    "countries": {"type": "array", "items": any_object},
                    "trend": {"type": "array", "items": any_object},
                    "cves": {"type": "array", "items": any_object},
                    "sectors": {"type": "array", "items": any_object},
                },
                "required": ["scan", "totals", "countries", "trend"],
            },
        ),
        "/api/countries": _get(
            "Countries of a scan with counts",
            [SCAN, Q, _param("vulnerable", {"enum": ["0", "1"]}), FORMAT,
             *_paging(key["country"] + counts)],
            _listing(key["country"] + counts),
            csv=True,
        ),
        "/api/countries/{cc}": _get(
            "ASes or sectors of one country with counts",
            [country_path, SCAN, Q, _param("by", {"enum": ["asn", "sector"]}), FORMAT,
             *_paging(key["asn"] + key["sector"] + counts)],
            {"type": "object"},
            csv=True,
        ),
        "/api/countries/{cc}/{kind}/{key}": _get(
            "Organisations of one AS or sector of a country",
            [country_path, _param("kind", {"enum": ["asn", "sector"]}, "path"),
             _param("key", {"type": "string", "minLength": 1}, "path", "AS number, sector or ~none"),
             SCAN, Q, FORMAT, *_paging(key["org"] + counts)],
            _listing(key["org"] + counts),
            csv=True,
        ),
        "/api/hosts": _get(
            "Hosts of a scan: any combination of country, AS, sector, organisation, CVE, build, network",
            [SCAN, Q, FORMAT, _param("show", {"enum": list(SHOW)}),
             _param("country", COUNTRY), _param("asn", {"type": "string", "pattern": "^(AS)?[0-9]{1,10}$|^~none$"}),
             _param("sector", {"type": "string"}), _param("organisation", {"type": "string"}),
             _param("cve", {"type": "string"}), _param("build", {"type": "string"}),
             _param("cidr", {"type": "string", "pattern": _CIDR4}, text="e.g. 193.190.0.0/16"),
             _param("compromise", {"enum": list(COMPROMISE)}, text="the web-shell check's state (scan --check)"),
             *_paging(host_cols)],
            _listing(host_cols),
            csv=True,
        ),
        "/api/hosts/{ip}": _get(
            "Every scan of one address: evidence, verdicts with basis and sources, notifications",
            [_param("ip", {"type": "string"}, "path")],
            {
                "type": "object",
                "properties": {
                    "ip": {"type": "string"},
                    "sightings": {"type": "array", "items": any_object},
                    "notifications": {"type": "array", "items": any_object},
                },
                "required": ["ip", "sightings", "notifications"],
            },
        ),
        "/api/scans": _get(
            "Scans (censuses) in the store",
            [_param("status", {"type": "string"}), FORMAT, *_paging(SCAN_COLUMNS)],
            _listing(SCAN_COLUMNS),
            csv=True,
        ),
        "/api/scans/{scan_id}": _get(
            "One census: status, counts, every shard's progress",
            [_param("scan_id", {"type": "string"}, "path")],
            {
                "type": "object",
                "properties": {
                    "scan_id": {"type": "string"},
                    "status": {"type": "string"},
                    "parts": {"type": "array", "items": any_object},
                    "shards": {"type": "string"},
                    "targets_done": {"type": "integer"},
                },
                "required": ["scan_id", "status", "parts", "shards", "targets_done"],
            },
        ),
        "/api/diff": _get(
            "What became of scan A's vulnerable hosts in scan B, per group, and each changed host",
            [_param("a", {"type": "string"}), _param("b", {"type": "string"}),
             _param("by", {"enum": ["country", "asn", "sector", "organisation", "version", "total"]}),
             _param("change", {"type": "string"}), FORMAT, *_paging(CHANGE_COLUMNS)],
            {
                "type": "object",
                "properties": {
                    "a": {"type": "string"},
                    "b": {"type": "string"},
                    "by": {"type": "string"},
                    "groups": {"type": "array", "items": _row(DIFF_COLUMNS)},
                    "hosts": _listing(CHANGE_COLUMNS),
                },
                "required": ["a", "b", "groups", "hosts"],
            },
            csv=True,
        ),
        "/api/cves": _get(
            "The CVE catalogue with the scan's host counts",
            [SCAN, Q, _param("kev", {"enum": ["0", "1"]}),
             _param("sort", {"enum": [c.key for c in CVE_COLUMNS]}), _param("dir", {"enum": ["asc", "desc"]})],
            {
                "type": "object",
                "properties": {
                    "scan_id": {"type": "string"},
                    "total": {"type": "integer"},
                    "rows": {"type": "array", "items": any_object},
                },
                "required": ["scan_id", "rows", "total"],
            },
        ),
        "/api/cves/{cve}": _get(
            "One CVE: facts, KEV, sources, fixed builds per CU, hosts in the scan",
            [_param("cve", {"type": "string"}, "path"), SCAN],
            {
                "type": "object",
                "properties": {
                    "cve": {"type": "string"},
                    "kev": {"type": "boolean"},
                    "products": {"type": "array", "items": any_object},
                    "sources": {"type": "array", "items": any_object},
                },
                "required": ["cve", "kev", "products", "sources"],
            },
        ),
        "/api/search": _get(
            "Search an address, network, host name, organisation, build, CVE or AS",
            [_param("q", {"type": "string"}), SCAN],
            {
                "type": "object",
                "properties": {
                    "q": {"type": "string"},
                    "kind": {"type": ["string", "null"]},
                    "goto": {"type": ["string", "null"]},
                    "hosts": {"type": "array", "items": any_object},
                    "organisations": {"type": "array", "items": any_object},
                },
                "required": ["q", "kind"],
            },
        ),
        "/api/notifications": _get(
            "Notifications recorded by `exwatch notify` (available: false when none)",
            [Q, FORMAT, _param("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000}),
             _param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE})],
            {
                "type": "object",
                "properties": {
                    "available": {"type": "boolean"},
                    "rows": {"type": "array", "items": any_object},
                    "total": {"type": "integer"},
                },
                "required": ["available", "rows", "total"],
            },
            csv=True,
        ),
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "exwatch census API",
            "version": __version__,
            "description": (
                "Read-only JSON view of an exwatch store: the same data as the web pages. "
                "Strings that scanned servers chose (host names, certificate and NTLM names, "
                "headers, organisation names from registries) are returned as they were "
                "received: escape them before showing them."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "token": {"type": "http", "scheme": "bearer"},
            }
        },
        "security": [{}, {"basic": []}, {"token": []}],
    }


__all__ = ["document"]
