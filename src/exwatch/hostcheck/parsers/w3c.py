"""IIS W3C extended logs (`inetpub\\logs\\LogFiles\\W3SVC<n>\\u_exYYMMDD.log`).

Space-separated, `-` for empty, spaces inside values written as `+`, times in UTC, a new
header block after each service restart.  Columns follow the site's logging settings, so
the `#Fields:` header of the file decides the mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

from exwatch.hostcheck.parsers.fielded import Aliases, FieldedParser
from exwatch.hostcheck.records import Kind

_DATE = re.compile(r"\d{4}-\d\d-\d\d\Z")


class W3CParser(FieldedParser):
    kind = Kind.IIS
    data_format = "IIS W3C extended log"
    separator = " "
    block_layout = "w3c"
    default_fields = (
        "date", "time", "s-ip", "cs-method", "cs-uri-stem", "cs-uri-query", "s-port",
        "cs-username", "c-ip", "cs(User-Agent)", "cs(Referer)", "sc-status", "sc-substatus",
        "sc-win32-status", "time-taken",
    )  # fmt: skip
    expected_fields = (
        "date", "time", "cs-method", "cs-uri-stem", "cs-uri-query", "c-ip", "sc-status",
        "cs(User-Agent)", "cs-username",
    )  # fmt: skip
    aliases: ClassVar[Aliases] = {
        "method": "cs-method",
        "url_stem": "cs-uri-stem",
        "url_query": "cs-uri-query",
        "client_ip": "c-ip",
        "server_ip": "s-ip",
        "server_port": "s-port",
        "username": "cs-username",
        "user_agent": "cs(user-agent)",
        "referer": "cs(referer)",
        "status": "sc-status",
        # IIS 8.5+ logs a custom field under its header name; older setups as cs(...).
        "x_forwarded_for": ("x-forwarded-for", "cs(x-forwarded-for)", "x_forwarded_for"),
    }

    def header_fields(self, text: str) -> list[str]:
        return text.split()

    def split(self, line: str) -> list[str] | None:
        return [("" if v == "-" else v) for v in line.split(" ")]

    def valid(self, values: list[str], index: Mapping[str, int]) -> bool:
        pos = index.get("date")
        if pos is None:
            return len(values) > 1
        return pos < len(values) and _DATE.match(values[pos]) is not None

    def timestamp(self, values: list[str], index: Mapping[str, int]) -> str:
        d = index.get("date")
        t = index.get("time")
        if d is None or t is None or t >= len(values):
            return ""
        return f"{values[d]}T{values[t]}Z"

    def derive(
        self, raw: str, values: list[str], index: Mapping[str, int]
    ) -> dict[str, str] | None:
        return None


__all__ = ["W3CParser"]
