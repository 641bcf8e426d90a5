"""The common machinery of logs that declare their columns in a `#Fields:` header.

Exchange logs (HttpProxy, ECP, Rps_Cmdlet, OABGenerator) are CSV; IIS W3C logs are
space-separated.  Columns differ between builds and IIS configurations, so every file is
mapped by its own header; repeated header blocks (a service restart) switch the mapping;
a bare header line (some collectors write one) and PowerShell's `#TYPE` export line are
recognised.  Lines before any header use the parser's default field list and the file
gets a warning.  A header that lacks columns the rules read (a reduced layout, or one the
parser does not know) is warned about by name.  Unparsable lines are counted, their line
ranges kept, and skipped: junk never ends a file (an attack line after a thousand junk
lines is still read).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar

from exwatch.hostcheck.parsers.lines import read_lines
from exwatch.hostcheck.records import FileStats, Kind, Record

_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
_HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-().]*\Z")


Aliases = Mapping[str, "str | tuple[str, ...]"]


def build_index(fields: Iterable[str], aliases: Aliases) -> dict[str, int]:
    """Lower-case name -> column, plus aliases that point at a present column (an alias
    with several targets takes the first one present)."""
    index: dict[str, int] = {}
    for pos, name in enumerate(fields):
        index.setdefault(name.strip().lower(), pos)
    for alias, target in aliases.items():
        if alias in index:
            continue
        for name in (target,) if isinstance(target, str) else target:
            found = index.get(name)
            if found is not None:
                index[alias] = found
                break
    return index


class FieldedParser:
    """Base of the header-driven parsers; subclasses set the class attributes."""

    kind: ClassVar[Kind]
    data_format: ClassVar[str]
    default_fields: ClassVar[tuple[str, ...]]
    aliases: ClassVar[Aliases] = {}
    separator: ClassVar[str] = ","  # "," = CSV with quoting; " " = W3C
    # Columns the rules read: a header without some of them is a reduced layout.
    expected_fields: ClassVar[tuple[str, ...]] = ()
    # Line layout the block scanner can read in bulk ("csv": ISO DateTime first; "w3c":
    # date and time first); None = always line by line.
    block_layout: ClassVar[str | None] = None

    # -- per-format hooks ---------------------------------------------------------------
    def split(self, line: str) -> list[str] | None:
        """Values of one data line, or None when it cannot be split."""
        if '"' not in line:
            return line.split(",")
        try:
            return next(csv.reader([line]))
        except (csv.Error, StopIteration):
            return None

    def timestamp(self, values: list[str], index: Mapping[str, int]) -> str:
        first = values[0] if values else ""
        return first if _ISO.match(first) else ""

    def valid(self, values: list[str], index: Mapping[str, int]) -> bool:
        return bool(values) and _ISO.match(values[0]) is not None

    def derive(
        self, raw: str, values: list[str], index: Mapping[str, int]
    ) -> dict[str, str] | None:
        """Fields computed from the line (None: nothing to add)."""
        return None

    def header_fields(self, text: str) -> list[str]:
        return [f for f in (part.strip() for part in text.split(",")) if f]

    def layout_problem(self, fields: list[str], index: Mapping[str, int]) -> str | None:
        """None when every expected column is present, else what is missing, by name."""
        missing = [f for f in self.expected_fields if f.lower() not in index]
        if not missing:
            return None
        known = [f for f in self.expected_fields if f.lower() in index]
        what = "reduced" if known else "unknown"
        return (
            f"{what} {self.data_format} column layout ({', '.join(fields[:12])}"
            f"{', ...' if len(fields) > 12 else ''}): missing {', '.join(missing)}"
        )

    # -- driver ---------------------------------------------------------------------------
    def parse_file(
        self, path: Path, rel: str, stats: FileStats, meta: dict[str, str] | None = None
    ) -> Iterator[Record]:
        try:
            stats.size = path.stat().st_size
            yield from self.parse_lines(read_lines(path, stats), rel, stats, meta)
        except OSError as exc:
            stats.error = f"cannot read: {exc.strerror or exc}"

    def parse_text(self, text: str, rel: str = "<example>") -> tuple[list[Record], FileStats]:
        """Parse lines given as a string (self-test examples); default header if none."""
        stats = FileStats(file=rel, kind=self.kind)
        numbered = enumerate(text.splitlines(), start=1)
        return list(self.parse_lines(numbered, rel, stats, None)), stats

    def parse_lines(
        self,
        lines: Iterable[tuple[int, str]],
        rel: str,
        stats: FileStats,
        meta: dict[str, str] | None,
    ) -> Iterator[Record]:
        state = LineState(self, rel, stats, meta)
        for number, line in lines:
            rec = state.feed(number, line)
            if rec is not None:
                yield rec


class LineState:
    """The per-file state of a header-driven parser, fed one line at a time.

    `parse_lines` feeds every line; the block scanner (`blockscan.py`) feeds only the
    lines it cannot account for in bulk and reports runs of plain records through
    `plain_records`, so both paths share this one definition of what a line means.
    """

    def __init__(
        self, parser: FieldedParser, rel: str, stats: FileStats, meta: dict[str, str] | None
    ) -> None:
        self.parser = parser
        self.kind = parser.kind
        self.rel = rel
        self.stats = stats
        self.fields: list[str] | None = None
        self.header_lower: list[str] = []
        self.index: dict[str, int] = build_index(parser.default_fields, parser.aliases)
        self.width = len(parser.default_fields)
        self.warned_default = False
        self.extra_shared = meta or {}

    def _set_header(self, fields: list[str], lowered: list[str]) -> None:
        self.fields = fields
        self.header_lower = lowered
        self.index = build_index(fields, self.parser.aliases)
        self.width = len(fields)
        self.stats.header_blocks += 1
        problem = self.parser.layout_problem(fields, self.index)
        if problem != self.stats.layout and problem is not None:
            self.stats.warn(problem)
        self.stats.layout = problem

    def _first_record(self) -> None:
        if self.fields is None and not self.warned_default:
            self.stats.warn("no #Fields header before the first data line: default columns used")
            self.warned_default = True

    def plain_records(self, count: int, low_ts: str, high_ts: str) -> None:
        """`count` well-formed data lines of the header's width, read in bulk."""
        stats = self.stats
        stats.lines += count
        self._first_record()
        stats.records += count
        stats.see_timestamp(low_ts)
        stats.see_timestamp(high_ts)

    def feed(self, number: int, line: str) -> Record | None:
        """One line (text without its line ending); a Record for a data line."""
        parser = self.parser
        stats = self.stats
        stats.lines += 1
        if not line.strip() or not line.strip("\x00"):
            return None
        if line[0] == "#":
            if line[:8].lower() == "#fields:":
                fields = parser.header_fields(line[8:].strip())
                if fields:
                    self._set_header(fields, [f.lower() for f in fields])
            return None
        if "\x00" in line:
            line = line.replace("\x00", "")
        values = parser.split(line)
        if values is None:
            stats.bad(number)
        elif not parser.valid(values, self.index):
            # A bare header line, or PowerShell's quoted header after `#TYPE`.
            if _is_header(values):
                lowered = [v.strip().lower() for v in values]
                if lowered != self.header_lower:
                    self._set_header([v.strip() for v in values], lowered)
                return None
            stats.bad(number)
        else:
            if len(values) != self.width:
                if len(values) > self.width and parser.separator == " ":
                    stats.bad(number)
                    stats.warn(f"line {number}: {len(values)} fields, header has {self.width}")
                    return None
                stats.truncated_lines += 1
            self._first_record()
            ts = parser.timestamp(values, self.index)
            stats.see_timestamp(ts)
            derived = parser.derive(line, values, self.index)
            if derived:
                extra = dict(self.extra_shared)
                extra.update(derived)
            else:
                extra = self.extra_shared
            stats.records += 1
            return Record(self.kind, self.rel, number, line, values, self.index, ts, extra)
        return None


def _is_header(values: list[str]) -> bool:
    return len(values) >= 2 and all(_HEADER_NAME.match(v.strip()) for v in values)


__all__ = ["FieldedParser", "LineState", "build_index"]
