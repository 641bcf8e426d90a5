# ruff: noqa: E501  (log lines are kept whole on purpose)
"""Render log lines in the real formats (field lists from compromise-indicators.md §5).

Used to build the committed fixtures (make_fixtures.py) and by bench/hostcheck_bench.py.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from exwatch.hostcheck.parsers.cmdlet import RPS_CMDLET_FIELDS
from exwatch.hostcheck.parsers.httpproxy import HTTPPROXY_FIELDS

HP_DEFAULT: dict[str, str] = dict(
    DateTime="2021-03-03T03:06:27.123Z",
    RequestId="5e58f5e5-1ddc-48d3-82c6-0199bc121640",
    MajorVersion="15",
    MinorVersion="1",
    BuildVersion="2176",
    RevisionVersion="2",
    Protocol="Ecp",
    UrlHost="mail.contoso.example",
    UrlStem="/ecp/y.js",
    AuthenticationType="",
    IsAuthenticated="false",
    AnchorMailbox="",
    UserAgent="ExchangeServicesClient/0.0.0.0",
    ClientIpAddress="198.51.100.21",
    ServerHostName="EXCH01",
    HttpStatus="200",
    BackEndStatus="200",
    Method="POST",
    ProxyAction="Proxy",
    TargetServer="exch01.contoso.local",
    TargetServerVersion="15.01.2176.000",
    RoutingType="",
    RoutingHint="",
    GenericInfo="BeginRequest=2021-03-03T03:06:27.100Z;CorrelationID=<empty>;ProxyState-Run=None;EndRequest=2021-03-03T03:06:27.123Z;",
    RoutingStatus="CafeV1",
)


def hp(**kw: str) -> str:
    d: dict[str, Any] = dict(HP_DEFAULT)
    d.update(kw)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([d.get(f, "") for f in HTTPPROXY_FIELDS])
    return buf.getvalue()


RPS_DEFAULT: dict[str, str] = dict(
    DateTime="2021-08-13T10:21:44.310Z",
    StartTime="2021-08-13T10:21:44.120Z",
    RequestId="7b91be61-3d94-406e-b00c-3d80e3e5f115",
    MajorVersion="15",
    MinorVersion="1",
    BuildVersion="2176",
    RevisionVersion="2",
    ServerHostName="EXCH01",
    ProcessId="15756",
    ProcessName="w3wp#MSExchangePowerShellAppPool",
    ThreadId="85",
    AuthenticatedUser="CONTOSO\\Administrator",
    ExecutingUserSid="S-1-5-21-1004336348-1177238915-682003330-500",
    IsAdmin="True",
    ClientApplication="Remote-PowerShell-Unknown",
    Cmdlet="Get-Mailbox",
    Parameters='-ResultSize "1"',
    ExecutionResult="Success",
)


def rps(**kw: str) -> str:
    d: dict[str, Any] = dict(RPS_DEFAULT)
    d.update(kw)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([d.get(f, "") for f in RPS_CMDLET_FIELDS])
    return buf.getvalue()


def iis(
    date: str = "2021-03-05",
    time: str = "03:06:27",
    sip: str = "10.0.0.5",
    method: str = "GET",
    stem: str = "/owa/",
    query: str = "&CorrelationID=<empty>;&cafeReqId=cde28fc4-3b6e-4a3a-9a2b-6f0f7c2b1a11;",
    port: str = "443",
    user: str = "-",
    cip: str = "198.51.100.21",
    ua: str = "Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64)+AppleWebKit/537.36+(KHTML,+like+Gecko)+Chrome/89.0.4389.82+Safari/537.36",
    ref: str = "-",
    status: str = "200",
    sub: str = "0",
    win32: str = "0",
    taken: str = "15",
) -> str:
    return " ".join(
        [
            date,
            time,
            sip,
            method,
            stem,
            query or "-",
            port,
            user,
            cip,
            ua,
            ref,
            status,
            sub,
            win32,
            taken,
        ]
    )


def ecp(cmd_event: str, ts: str = "2021-03-03T03:10:11.512Z") -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([ts, "EXCH01", "ECP.Request", cmd_event])
    return buf.getvalue()


def evtx(
    provider: str,
    eid: int,
    level: int,
    data: list[str],
    channel: str = "MSExchange Management",
    ts: str = "2021-08-13T10:21:44.310000Z",
) -> str:
    return json.dumps(
        {
            "Event": {
                "System": {
                    "Provider": {"#attributes": {"Name": provider}},
                    "EventID": {"#attributes": {"Qualifiers": 49152}, "#text": eid}
                    if channel == "Application"
                    else eid,
                    "Level": level,
                    "TimeCreated": {"#attributes": {"SystemTime": ts}},
                    "Channel": channel,
                    "Computer": "EXCH01.contoso.local",
                },
                "EventData": {"Data": {"#text": data}},
            }
        }
    )


HP_HEADER = (
    "#Software: Microsoft Exchange Server\n#Version: 15.01.2176.002\n#Log-type: HttpProxy Logs\n"
    "#Date: {date}\n#Fields: " + ",".join(HTTPPROXY_FIELDS) + "\n"
)
IIS_HEADER = (
    "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n#Date: {date}\n"
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\n"
)
ECP_HEADER = (
    "#Software: Microsoft Exchange Server\n#Version: 15.0.0.0\n#Log-type: ECP Server Log\n"
    "#Date: {date}\n#Fields: TimeStamp,ServerName,EventId,EventData\n"
)
RPS_HEADER = (
    "#Software: Microsoft Exchange Server\n#Version: 15.01.2176.002\n#Log-type: Rps Cmdlet Logs\n"
    "#Date: {date}\n#Fields: " + ",".join(RPS_CMDLET_FIELDS) + "\n"
)
