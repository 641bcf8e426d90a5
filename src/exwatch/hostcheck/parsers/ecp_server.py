"""Exchange ECP Server logs (`Logging\\ECP\\Server\\ECPServerYYYYMMDD-N.LOG`).

`#Fields: TimeStamp,ServerName,EventId,EventData`; EventData is `;`-separated `S:KEY=value`
pairs, cmdlets as `S:CMD=<Cmdlet>.<Param>='<value>'...`; CSV-quoted when the payload holds
a quote or comma.
"""

from __future__ import annotations

from exwatch.hostcheck.parsers.fielded import FieldedParser
from exwatch.hostcheck.records import Kind


class EcpServerParser(FieldedParser):
    kind = Kind.ECP_SERVER
    data_format = "Exchange ECP Server log"
    default_fields = ("TimeStamp", "ServerName", "EventId", "EventData")
    expected_fields = ("TimeStamp", "EventData")
    block_layout = "csv"


__all__ = ["EcpServerParser"]
