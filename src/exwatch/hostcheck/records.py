"""Typed records produced by the host-log parsers (plaso style: parse first, detect later).

A record is one line (or one event) of one file, with its fields mapped by the `#Fields:`
header of that file.  Values are kept as the strings the log holds; `get` resolves the
common aliases (`url_stem`, `user_agent`, `client_ip`, ...) so one rule can read IIS and
HttpProxy records alike.  Records are built for every line of files of gigabytes, so the
class is slotted and lazy: no dict per line, the lower-cased raw line only when asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


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

    __slots__ = ("_lower", "extra", "file", "index", "kind", "line", "raw", "timestamp", "values")

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
        }


__all__ = ["FileStats", "Kind", "Record"]
