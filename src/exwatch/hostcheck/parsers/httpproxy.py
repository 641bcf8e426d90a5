"""Exchange HttpProxy logs (`Logging\\HttpProxy\\<Protocol>\\HttpProxy_YYYYMMDDHH-N.LOG`).

CSV under a `#Fields:` header (74 columns on 2016 CU23, fewer on older builds), UTC
ISO-8601 DateTime.  The protocol folder (Ecp, Autodiscover, PowerShell ...) is part of
Test-ProxyLogon's CVE-2021-27065 condition: discovery passes it as the `_folder` meta field;
when the layout lost it, the record's own Protocol column stands in.

Responders also hand over reduced exports (a CERT's picked columns, Test-ProxyLogon's CSV).
Their header is warned about by name; for the request fields the rules read and the header
does not name, a value of the right shape is taken from the row (the first value starting
with "/" as UrlStem, a three-digit status, an HTTP method, an IP address), because such
exports keep those values even when their column names are in another language.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import ClassVar

from exwatch.hostcheck.parsers.fielded import Aliases, FieldedParser
from exwatch.hostcheck.records import Kind

_STATUS = re.compile(r"[1-5]\d\d\Z")
_METHODS = frozenset({"GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "RPC_IN_DATA"})

HTTPPROXY_FIELDS = (
    "DateTime", "RequestId", "MajorVersion", "MinorVersion", "BuildVersion", "RevisionVersion",
    "ClientRequestId", "Protocol", "UrlHost", "UrlStem", "ProtocolAction", "AuthenticationType",
    "IsAuthenticated", "AuthenticatedUser", "Organization", "AnchorMailbox", "UserAgent",
    "ClientIpAddress", "ServerHostName", "HttpStatus", "BackEndStatus", "ErrorCode", "Method",
    "ProxyAction", "TargetServer", "TargetServerVersion", "RoutingType", "RoutingHint",
    "BackEndCookie", "ServerLocatorHost", "ServerLocatorLatency", "RequestBytes", "ResponseBytes",
    "TargetOutstandingRequests", "AuthModulePerfContext", "HttpPipelineLatency",
    "CalculateTargetBackEndLatency", "GlsLatencyBreakup", "TotalGlsLatency",
    "AccountForestLatencyBreakup", "TotalAccountForestLatency", "ResourceForestLatencyBreakup",
    "TotalResourceForestLatency", "ADLatency", "SharedCacheLatencyBreakup",
    "TotalSharedCacheLatency", "ActivityContextLifeTime", "ModuleToHandlerSwitchingLatency",
    "ClientReqStreamLatency", "BackendReqInitLatency", "BackendReqStreamLatency",
    "BackendProcessingLatency", "BackendRespInitLatency", "BackendRespStreamLatency",
    "ClientRespStreamLatency", "KerberosAuthHeaderLatency", "HandlerCompletionLatency",
    "RequestHandlerLatency", "HandlerToModuleSwitchingLatency", "ProxyTime", "CoreLatency",
    "RoutingLatency", "HttpProxyOverhead", "TotalRequestTime", "RouteRefresherLatency",
    "UrlQuery", "BackEndGenericInfo", "GenericInfo", "GenericErrors", "EdgeTraceId",
    "DatabaseGuid", "UserADObjectGuid", "PartitionEndpointLookupLatency", "RoutingStatus",
)  # fmt: skip


class HttpProxyParser(FieldedParser):
    kind = Kind.HTTPPROXY
    data_format = "Exchange HttpProxy log"
    default_fields = HTTPPROXY_FIELDS
    block_layout = "csv"
    expected_fields = (
        "DateTime", "Protocol", "UrlStem", "UrlQuery", "AnchorMailbox", "UserAgent",
        "ClientIpAddress", "HttpStatus", "Method", "RoutingHint",
    )  # fmt: skip
    aliases: ClassVar[Aliases] = {
        "method": "method",
        "url_stem": "urlstem",
        "url_query": "urlquery",
        "client_ip": "clientipaddress",
        "username": "authenticateduser",
        "user_agent": "useragent",
        "status": "httpstatus",
        "_folder": "protocol",
        "x_forwarded_for": ("x-forwarded-for", "xforwardedfor"),
    }

    def derive(
        self, raw: str, values: list[str], index: Mapping[str, int]
    ) -> dict[str, str] | None:
        if "url_stem" in index and "status" in index:
            return None  # a native layout: nothing to infer
        return infer_request_fields(values, index)


def infer_request_fields(values: list[str], index: Mapping[str, int]) -> dict[str, str]:
    """Request fields of a reduced layout, by the shape of the values (see the module)."""
    out: dict[str, str] = {}
    rest = values[1:]  # the first value is the timestamp
    if "url_stem" not in index:
        stem = next((v for v in rest if v.startswith("/")), "")
        if stem:
            path, _, query = stem.partition("?")
            out["url_stem"] = path
            if query and "url_query" not in index:
                out["url_query"] = query
    if "status" not in index:
        out["status"] = next((v for v in reversed(rest) if _STATUS.match(v)), "")
    if "method" not in index:
        out["method"] = next((v for v in reversed(rest) if v.upper() in _METHODS), "").upper()
    if "client_ip" not in index:
        for value in rest:
            if value and (value[0].isdigit() or ":" in value) and len(value) <= 45:
                try:
                    out["client_ip"] = str(ipaddress.ip_address(value))
                    break
                except ValueError:
                    continue
    return out


__all__ = ["HTTPPROXY_FIELDS", "HttpProxyParser", "infer_request_fields"]
