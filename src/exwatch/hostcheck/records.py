"""Typed records produced by the host-log parsers (plaso style: parse first, detect later).

A record is one line (or one event) of one file, with its fields mapped by the `#Fields:`
header of that file.  Values are kept as the strings the log holds; `get` resolves the
common aliases (`url_stem`, `user_agent`, `client_ip`, ...) so one rule can read IIS and
HttpProxy records alike.  Records are built for every line of files of gigabytes, so the
class is slotted and lazy: no dict per line, the lower-cased raw line only when asked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import unquote_plus


class Kind(StrEnum):
    """Record kinds; the string is what rules name in `applies_to`."""

    IIS = "iis:w3c:line"
    HTTPPROXY = "exchange:httpproxy:line"
    ECP_SERVER = "exchange:ecp:server:line"
    OAB_GENERATOR = "exchange:oabgenerator:line"
    CMDLET = "exchange:cmdlet:line"
    EVTX = "windows:evtx:record"


class Record:
    """One parsed line or event.

    `index` maps lower-case field names (and aliases) to positions in `values`; it is
    shared by every record under the same `#Fields:` header.  `extra` holds fields the
    parser derives (OAB download path, EVTX cmdlet ...) and the `_`-prefixed meta fields
    (`_folder`: the HttpProxy protocol folder).
    """

    __slots__ = (
        "_computed",
        "_lower",
        "extra",
        "file",
        "index",
        "kind",
        "line",
        "raw",
        "timestamp",
        "values",
    )

    def __init__(
        self,
        kind: Kind,
        file: str,
        line: int | None,
        raw: str,
        values: list[str],
        index: Mapping[str, int],
        timestamp: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.file = file
        self.line = line
        self.raw = raw
        self.values = values
        self.index = index
        self.timestamp = timestamp  # ISO-8601 UTC ("2021-03-05T03:06:27Z") or "" when unknown
        self.extra = extra if extra is not None else {}
        self._lower: str | None = None
        # Computed fields of this record (never in `extra`: records of one file may share
        # one `extra` dict of meta fields).
        self._computed: dict[str, str] | None = None

    def get(self, name: str) -> str:
        """Field value by (case-insensitive) name or alias; "" when absent or empty."""
        key = name.lower()
        if key == "raw":
            return self.raw
        if key in self.extra:  # derived and meta fields win over same-named aliases
            return self.extra[key]
        pos = self.index.get(key)
        if pos is not None:
            return self.values[pos] if pos < len(self.values) else ""
        compute = COMPUTED.get(key)
        if compute is not None:
            if self._computed is None:
                self._computed = {}
            value = self._computed.get(key)
            if value is None:
                value = self._computed[key] = compute(self)
            return value
        return ""

    @property
    def lower(self) -> str:
        if self._lower is None:
            self._lower = self.raw.lower()
        return self._lower

    def as_dict(self) -> dict[str, str]:
        """Every named field (not aliases) with its value; for evidence and tests."""
        out = {name: self.values[pos] for name, pos in self.index.items() if pos < len(self.values)}
        out.update(self.extra)
        return out


def _url_decoded(rec: Record) -> str:
    # Stem and query as the client sent them: IIS writes the query URL-encoded, and web
    # shells are driven by commands in it (`cmd%20/c`, `whoami`, base64 PowerShell).
    # Decoded twice: attackers double-encode to get past filters.
    stem = rec.get("url_stem")
    query = rec.get("url_query")
    text = stem + ("?" + query if query else "")
    return unquote_plus(unquote_plus(text, errors="replace"), errors="replace")


def _forwarded_client(rec: Record) -> str:
    """The first address of X-Forwarded-For when the log has that column (the client
    behind a balancer); "" otherwise or when it does not parse as an address."""
    value = rec.get("x_forwarded_for")
    if not value:
        return ""
    first = value.replace("+", " ").split(",")[0].strip()
    if first.startswith("[") and "]" in first:  # [v6]:port
        first = first[1 : first.index("]")]
    elif first.count(":") == 1:  # v4:port
        first = first.split(":")[0]
    try:
        return str(ipaddress.ip_address(first))
    except ValueError:
        return ""


def _source_ip(rec: Record) -> str:
    return rec.get("_forwarded_client") or rec.get("client_ip")


# Fields computed from others on first use (and then cached in `extra`).  Names start with
# "_" because their values need not appear verbatim in the raw line, so the prefilters
# (which look for needles in raw bytes) must not derive needles from conditions on them.
COMPUTED: dict[str, Callable[[Record], str]] = {
    "_url_decoded": _url_decoded,
    "_forwarded_client": _forwarded_client,
    "_source_ip": _source_ip,
}


@dataclass(slots=True)
class FileStats:
    """What reading one file gave: counts, warnings and the time range it covers."""

    file: str
    kind: Kind
    size: int = 0
    lines: int = 0
    records: int = 0
    bad_lines: int = 0
    truncated_lines: int = 0
    decode_fallbacks: int = 0
    header_blocks: int = 0
    first_timestamp: str = ""
    last_timestamp: str = ""
    gave_up: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Where unparsable lines (or damaged records) were: merged [first, last] ranges, the
    # first MAX_RANGES of them (the count above is always complete).
    bad_ranges: list[list[int]] = field(default_factory=list)
    # Records per source ("iis", "httpproxy", "evtx:sysmon" ...): an event export mixes
    # channels, so one file can feed several sources.
    sources: dict[str, int] = field(default_factory=dict)
    # First and last timestamp per source, when a file feeds several (event exports).
    source_times: dict[str, list[str]] = field(default_factory=dict)
    # Known problems with the file's columns (reduced or unknown layout), by name.
    layout: str | None = None

    MAX_RANGES = 20

    def bad(self, number: int | None) -> None:
        """Count one unparsable line (or damaged record) and remember where it was."""
        self.bad_lines += 1
        if number is None:
            return
        ranges = self.bad_ranges
        if ranges and ranges[-1][1] + 1 == number:
            ranges[-1][1] = number
        elif len(ranges) < self.MAX_RANGES:
            ranges.append([number, number])

    def source(self, name: str, count: int = 1, timestamp: str = "") -> None:
        self.sources[name] = self.sources.get(name, 0) + count
        if timestamp:
            span = self.source_times.setdefault(name, [timestamp, timestamp])
            if timestamp < span[0]:
                span[0] = timestamp
            if timestamp > span[1]:
                span[1] = timestamp

    def see_timestamp(self, ts: str) -> None:
        if not ts:
            return
        # ISO strings of one shape order like the instants they name.
        if not self.first_timestamp or ts < self.first_timestamp:
            self.first_timestamp = ts
        if not self.last_timestamp or ts > self.last_timestamp:
            self.last_timestamp = ts

    def warn(self, message: str) -> None:
        # Bounded: a hostile file must not grow this list without end.
        if len(self.warnings) < 20:
            self.warnings.append(message)

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "kind": str(self.kind),
            "size": self.size,
            "lines": self.lines,
            "records": self.records,
            "bad_lines": self.bad_lines,
            "truncated_lines": self.truncated_lines,
            "decode_fallbacks": self.decode_fallbacks,
            "first_timestamp": self.first_timestamp or None,
            "last_timestamp": self.last_timestamp or None,
            "gave_up": self.gave_up,
            "error": self.error,
            "warnings": list(self.warnings),
            "bad_line_ranges": [list(r) for r in self.bad_ranges],
            "sources": dict(self.sources),
            "layout": self.layout,
        }


__all__ = ["COMPUTED", "FileStats", "Kind", "Record"]
