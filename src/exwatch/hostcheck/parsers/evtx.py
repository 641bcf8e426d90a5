"""Windows event logs (`Application.evtx`, `MSExchange Management.evtx`) via pyevtx-rs.

The `evtx` package (Rust bindings, well kept, fast) renders each record as JSON; Linux has
no Exchange message DLLs, so the rendered Message text is missing and rules match the
EventData strings instead.  For `MSExchange CmdletLogs` events the first three Data values
are the cmdlet, its parameters and the caller (Microsoft's order), exposed as the fields
`cmdlet`, `parameters` and `caller` so one rule reads these events and Rps_Cmdlet lines.

`record_from_json` is the mapping; the self-test feeds rule examples (JSON in the library's
shape) through it, so examples and real files take the same path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exwatch.hostcheck.records import FileStats, Kind, Record

_EMPTY_INDEX: dict[str, int] = {}
CMDLET_PROVIDER = "msexchange cmdletlogs"


def _text(value: Any) -> str:
    if isinstance(value, dict):
        inner = value.get("#text", "")
        return _text(inner)
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _leaves(value: Any, out: list[str]) -> None:
    """Every string under EventData, in document order (attributes left out)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key != "#attributes":
                _leaves(inner, out)
    elif isinstance(value, list):
        for inner in value:
            _leaves(inner, out)
    elif value is not None:
        out.append(str(value))


def record_from_json(event: dict[str, Any], rel: str, record_id: int | None) -> Record:
    """Map one event (the library's JSON shape) to a Record."""
    root = event.get("Event", event)
    system = root.get("System", {}) if isinstance(root, dict) else {}
    provider_node = system.get("Provider", {})
    attrs = provider_node.get("#attributes", {}) if isinstance(provider_node, dict) else {}
    provider = str(attrs.get("Name") or attrs.get("EventSourceName") or "")
    event_id = _text(system.get("EventID", ""))
    level = _text(system.get("Level", ""))
    channel = _text(system.get("Channel", ""))
    computer = _text(system.get("Computer", ""))
    created = system.get("TimeCreated", {})
    created_attrs = created.get("#attributes", {}) if isinstance(created, dict) else {}
    timestamp = _iso_z(str(created_attrs.get("SystemTime", "")))
    data: list[str] = []
    for section in ("EventData", "UserData"):
        if isinstance(root, dict) and section in root:
            _leaves(root[section], data)
    extra = {
        "provider": provider,
        "event_id": event_id,
        "level": level,
        "channel": channel,
        "computer": computer,
        "data": " | ".join(data),
    }
    if provider.lower() == CMDLET_PROVIDER:
        for name, pos in (("cmdlet", 0), ("parameters", 1), ("caller", 2)):
            extra[name] = data[pos] if len(data) > pos else ""
    raw = f"{channel} {provider} EventID {event_id} Level {level}: {extra['data']}"
    return Record(Kind.EVTX, rel, record_id, raw, [], _EMPTY_INDEX, timestamp, extra)


def _iso_z(value: str) -> str:
    if not value:
        return ""
    value = value.replace(" UTC", "Z").replace(" ", "T")
    return value if value.endswith("Z") else value + "Z"


class EvtxParser:
    kind = Kind.EVTX
    data_format = "Windows EVTX event log"

    def parse_file(
        self, path: Path, rel: str, stats: FileStats, meta: dict[str, str] | None = None
    ) -> Iterator[Record]:
        try:
            from evtx import PyEvtxParser
        except ImportError:  # pragma: no cover - declared dependency
            stats.error = "the `evtx` package is not installed"
            return
        try:
            stats.size = path.stat().st_size
            with path.open("rb") as fh:
                magic = fh.read(8)
            if magic != b"ElfFile\x00":
                stats.error = "not an EVTX file (no ElfFile header)"
                return
            parser = PyEvtxParser(str(path), number_of_threads=1)
            records = parser.records_json()
        except (OSError, RuntimeError, ValueError) as exc:
            stats.error = f"not a readable EVTX file: {exc}"
            return
        while True:
            try:
                item: Any = next(records)
            except StopIteration:
                if stats.records == 0:
                    stats.warn("no event records could be read from this file")
                return
            except (OSError, RuntimeError, ValueError) as exc:
                # pyevtx-rs raises on a corrupt chunk; keep what was read and say where.
                stats.bad_lines += 1
                stats.gave_up = True
                stats.warn(f"stopped after {stats.records} records: {exc}")
                return
            stats.lines += 1
            try:
                event = json.loads(item["data"])
            except (KeyError, TypeError, ValueError):
                stats.bad_lines += 1
                continue
            record_id = item.get("event_record_id")
            rec = record_from_json(event, rel, record_id if isinstance(record_id, int) else None)
            stats.records += 1
            stats.see_timestamp(rec.timestamp)
            yield rec

    def parse_text(self, text: str, rel: str = "<example>") -> tuple[list[Record], FileStats]:
        """One event as JSON text in the library's shape (self-test examples)."""
        stats = FileStats(file=rel, kind=self.kind)
        try:
            event = json.loads(text)
        except ValueError:
            stats.bad_lines += 1
            return [], stats
        stats.records = 1
        return [record_from_json(event, rel, None)], stats


__all__ = ["EvtxParser", "record_from_json"]
