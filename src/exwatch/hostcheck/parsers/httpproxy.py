"""Exchange HttpProxy logs (`Logging\\HttpProxy\\<Protocol>\\HttpProxy_YYYYMMDDHH-N.LOG`).

CSV under a `#Fields:` header (74 columns on 2016 CU23, fewer on older builds), UTC
ISO-8601 DateTime.  The protocol folder (Ecp, Autodiscover, PowerShell ...) is part of
Test-ProxyLogon's CVE-2021-27065 condition: discovery passes it as the `_folder` meta field;
when the layout lost it, the record's own Protocol column stands in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from exwatch.hostcheck.parsers.fielded import FieldedParser
from exwatch.hostcheck.records import Kind

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
    aliases: ClassVar[Mapping[str, str]] = {
        "method": "method",
        "url_stem": "urlstem",
        "url_query": "urlquery",
        "client_ip": "clientipaddress",
        "username": "authenticateduser",
        "user_agent": "useragent",
        "status": "httpstatus",
        "_folder": "protocol",
    }


__all__ = ["HTTPPROXY_FIELDS", "HttpProxyParser"]
