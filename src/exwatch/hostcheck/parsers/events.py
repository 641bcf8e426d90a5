"""One Windows event, whatever shape it was handed over in, as one Record.

Events reach a responder as EVTX (rendered by the `evtx` package as JSON), as `evtx_dump`
JSON or JSON lines (the same shape), or as SIEM exports: flat objects with the EventData
names as keys (Sentinel/OTRF, Splunk's extracted fields), Elastic's `winlog.*` documents,
Splunk results whose `_raw` is the event XML, and tables whose `EventData` is an XML or
JSON string.  All of them become the same fields, so one rule reads every shape:

    provider, event_id, level, channel, computer, message, data (every value, joined),
    every named EventData value under its lower-cased name (image, commandline, ...),
    and for `MSExchange CmdletLogs`: cmdlet, parameters, caller, client_application,
    process (from the Data list, or from the rendered Message when an export kept only
    that: "Cmdlet suceeded. Cmdlet X, parameters Y.");
    and names shared by Sysmon and Security so one rule reads both: process_image
    (Image / NewProcessName), parent_image (ParentImage / ParentProcessName), command_line,
    target_file (TargetFilename).

Nothing here trusts the input: unknown shapes give None, values are strings, XML with a
DOCTYPE is refused and sizes are bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree

from exwatch.hostcheck.records import FileStats, Kind, Record

CMDLET_PROVIDER = "msexchange cmdletlogs"
# Data positions of MSExchange CmdletLogs events (Microsoft's order, confirmed by real
# records: cmdlet, parameters, caller, SIDs, client application, "pid process").
_CMDLET_POSITIONS = (
    ("cmdlet", 0),
    ("parameters", 1),
    ("caller", 2),
    ("client_application", 5),
    ("process", 6),
)
_CMDLET_MESSAGE = re.compile(
    r"Cmdlet (?:suc+eeded|failed)\.\s*Cmdlet ([\w-]+), parameters (.*?)\.?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_EMPTY_INDEX: dict[str, int] = {}
_LEVELS = {"critical": "1", "error": "2", "warning": "3", "information": "4", "verbose": "5"}
MAX_XML_CHARS = 1 << 20
# Sysmon and Security name the same things differently; rules read the common name.
_COMMON_NAMES = (
    ("process_image", ("image", "newprocessname", "processname")),
    ("parent_image", ("parentimage", "parentprocessname")),
    ("command_line", ("commandline", "processcommandline")),
    ("target_file", ("targetfilename",)),
    # The remote address of a logon (Security 4624/4625): the finding's source address.
    ("client_ip", ("ipaddress",)),
)

# Channel (lower case) -> coverage source (result.SOURCES).
CHANNEL_SOURCES = {
    "application": "evtx:application",
    "msexchange management": "evtx:msexchange-management",
    "microsoft-windows-sysmon/operational": "evtx:sysmon",
    "security": "evtx:security",
    "microsoft-windows-powershell/operational": "evtx:powershell",
    "windows powershell": "evtx:powershell",
    "powershellcore/operational": "evtx:powershell",
    "system": "evtx:system",
    "microsoft-windows-windows defender/operational": "evtx:defender",
}

# Keys each shape uses for the System fields, most specific first.
_SYSTEM_KEYS: dict[str, tuple[str, ...]] = {
    "provider": (
        "provider",
        "providername",
        "provider_name",
        "sourcename",
        "source",
        "eventsourcename",
        "winlog.provider_name",
    ),
    "event_id": ("eventid", "eventcode", "event_id", "winlog.event_id", "event.code"),
    "level": ("level", "leveldisplayname", "winlog.level", "log.level", "type"),
    "channel": ("channel", "logname", "eventlog", "winlog.channel", "log_name"),
    "computer": (
        "computer",
        "computername",
        "hostname",
        "host",
        "winlog.computer_name",
        "host.name",
    ),
    "time": (
        "timecreated",
        "systemtime",
        "utctime",
        "@timestamp",
        "timegenerated",
        "_time",
        "eventtime",
        "timestamp",
    ),
    "message": ("message", "rendereddescription", "renderedmessage", "body"),
}
_SYSTEM_NAMES = {k for keys in _SYSTEM_KEYS.values() for k in keys}
# Keys of export envelopes that are not EventData.
_NOT_DATA = _SYSTEM_NAMES | {
    "keywords",
    "task",
    "opcode",
    "version",
    "providerguid",
    "recordnumber",
    "eventrecordid",
    "event_record_id",
    "processid_",
    "threadid_",
    "_raw",
    "sourcetype",
    "index",
    "splunk_server",
    "linecount",
    "punct",
    "eventtype",
    "tenantid",
    "type_",
    "managementgroupname",
    "sourcesystem",
    "eventdata",
    "userdata",
    "parameterxml",
}


def text_of(value: Any) -> str:
    """A string for any JSON value the exports use ({"#text": ...}, lists, numbers)."""
    if isinstance(value, dict):
        return text_of(value.get("#text", ""))
    if isinstance(value, list):
        return " ".join(text_of(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flatten(value: Any, prefix: str, out: dict[str, Any], depth: int = 0) -> None:
    """Nested dicts as dotted lower-case keys (Elastic documents nest `winlog.*`)."""
    if depth > 8:
        return
    for key, inner in value.items():
        name = f"{prefix}{str(key).lower()}"
        if isinstance(inner, dict) and "#text" not in inner and name not in ("eventdata",):
            _flatten(inner, name + ".", out, depth + 1)
        else:
            out.setdefault(name, inner)


def _pick(flat: Mapping[str, Any], field: str) -> str:
    for key in _SYSTEM_KEYS[field]:
        if key in flat and flat[key] not in (None, ""):
            return text_of(flat[key])
    return ""


def iso_utc(value: str) -> str:
    """An ISO-8601 UTC timestamp ending in Z, or "" when `value` is not a date."""
    text = value.strip()
    if not text:
        return ""
    text = text.replace(" UTC", "Z")
    if len(text) > 10 and text[10] == " ":
        text = text[:10] + "T" + text[11:]
    if text.endswith("Z") and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text):
        return text
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def _event_data(node: Any, named: dict[str, str], positional: list[str], depth: int = 0) -> None:
    """EventData/UserData as the `evtx` package renders it: named values as keys, unnamed
    ones as `Data` (a string, a list, or {"#text": [...]}), UserData nested one level."""
    if depth > 6:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "#attributes":
                continue
            if key in ("Data", "#text"):
                if isinstance(value, dict) and "#text" not in value:
                    _event_data(value, named, positional, depth + 1)
                elif isinstance(value, dict | list):
                    inner = value.get("#text") if isinstance(value, dict) else value
                    items = inner if isinstance(inner, list) else [inner]
                    positional.extend(text_of(v) for v in items)
                elif value is not None:
                    positional.append(text_of(value))
            elif isinstance(value, dict) and "#text" not in value:
                _event_data(value, named, positional, depth + 1)
            else:
                named.setdefault(str(key), text_of(value))
    elif isinstance(node, list):
        positional.extend(text_of(v) for v in node)
    elif node is not None:
        positional.append(text_of(node))


def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_event_xml(text: str) -> dict[str, Any] | None:
    """The Windows event XML (`<Event>` or Sentinel's `<DataItem>`) as the `evtx` package's
    JSON shape; None when it is not event XML.  DOCTYPEs are refused (entity expansion)."""
    if len(text) > MAX_XML_CHARS or "<!doctype" in text[:4096].lower() or "<!entity" in text:
        return None
    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - bounded, no DOCTYPE (above)
    except ElementTree.ParseError:
        return None
    system: dict[str, Any] = {}
    data: dict[str, Any] = {}
    positional: list[str] = []
    for elem in root.iter():
        tag = _strip_ns(elem.tag)
        parent_is_data = tag == "Data"
        if tag == "Provider":
            system["Provider"] = {"#attributes": dict(elem.attrib)}
        elif tag == "TimeCreated":
            system["TimeCreated"] = {"#attributes": dict(elem.attrib)}
        elif tag in ("EventID", "Level", "Channel", "Computer", "EventRecordID"):
            system[tag] = (elem.text or "").strip()
        elif parent_is_data:
            name = elem.attrib.get("Name")
            if name:
                data.setdefault(name, elem.text or "")
            else:
                positional.append(elem.text or "")
    if not system and not data and not positional:
        return None
    if positional:
        data["Data"] = positional
    # UserData (log cleared, ...): leaf elements by tag.
    for user in (e for e in root.iter() if _strip_ns(e.tag) == "UserData"):
        for leaf in user.iter():
            if len(leaf) == 0 and leaf is not user:
                data.setdefault(_strip_ns(leaf.tag), leaf.text or "")
    return {"Event": {"System": system, "EventData": data}}


def _from_evtx_shape(root: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    system = root.get("System", {})
    system = system if isinstance(system, dict) else {}
    provider_node = system.get("Provider", {})
    attrs = provider_node.get("#attributes", {}) if isinstance(provider_node, dict) else {}
    created = system.get("TimeCreated", {})
    created_attrs = created.get("#attributes", {}) if isinstance(created, dict) else {}
    fields = {
        "provider": text_of(attrs.get("Name") or attrs.get("EventSourceName") or ""),
        "event_id": text_of(system.get("EventID", "")),
        "level": text_of(system.get("Level", "")),
        "channel": text_of(system.get("Channel", "")),
        "computer": text_of(system.get("Computer", "")),
        "time": text_of(created_attrs.get("SystemTime", "")),
        "message": text_of(root.get("Message", "")),
    }
    named: dict[str, str] = {}
    positional: list[str] = []
    for section in ("EventData", "UserData"):
        if section in root:
            _event_data(root[section], named, positional)
    return fields, named, positional


def _from_flat(obj: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str], list[str]] | None:
    flat: dict[str, Any] = {}
    _flatten(obj, "", flat)
    fields = {name: _pick(flat, name) for name in _SYSTEM_KEYS}
    if not fields["event_id"] or not (fields["channel"] or fields["provider"]):
        return None
    named: dict[str, str] = {}
    positional: list[str] = []
    event_data = flat.get("eventdata", flat.get("winlog.event_data"))
    if isinstance(event_data, str) and event_data.lstrip().startswith("<"):
        parsed = parse_event_xml(event_data)
        if parsed is not None:
            _event_data(parsed["Event"].get("EventData", {}), named, positional)
    elif isinstance(event_data, dict):
        _event_data(event_data, named, positional)
    for key, value in obj.items():
        low = str(key).lower()
        if low in _NOT_DATA or isinstance(value, dict | list) or low.startswith(("@", "_")):
            continue
        named.setdefault(str(key), text_of(value))
    for key, value in flat.items():
        if key.startswith("winlog.event_data.") and not isinstance(value, dict | list):
            named.setdefault(key.split(".", 2)[2], text_of(value))
    return fields, named, positional


def event_parts(obj: Any) -> tuple[dict[str, str], dict[str, str], list[str]] | None:
    """(system fields, named data, positional data) of one event in any known shape."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("result"), dict):  # Splunk's JSON export wraps each result
        obj = obj["result"]
    event = obj.get("Event")
    if isinstance(event, dict) and isinstance(event.get("System"), dict):
        fields, named, positional = _from_evtx_shape(event)
        if not fields["message"]:
            fields["message"] = text_of(obj.get("Message", ""))
        return fields, named, positional
    raw = obj.get("_raw") or (event if isinstance(event, str) else None)
    if isinstance(raw, str) and raw.lstrip().startswith("<"):
        parsed = parse_event_xml(raw)
        if parsed is not None:
            fields, named, positional = _from_evtx_shape(parsed["Event"])
            flat = _from_flat(obj)
            if flat is not None:  # Splunk adds the rendered Message and extractions
                for key, value in flat[0].items():
                    fields[key] = fields[key] or value
            return fields, named, positional
    return _from_flat(obj)


def channel_source(channel: str, provider: str = "") -> str:
    """The coverage source of an event channel ("evtx:other" for channels no rule reads)."""
    found = CHANNEL_SOURCES.get(channel.strip().lower())
    if found:
        return found
    if provider.lower() == CMDLET_PROVIDER:
        return "evtx:msexchange-management"
    return "evtx:other"


def record_from_event(obj: Any, rel: str, number: int | None) -> Record | None:
    """Map one event (any shape above) to a Record; None when it is not an event."""
    parts = event_parts(obj)
    if parts is None:
        return None
    fields, named, positional = parts
    level = fields["level"]
    level = _LEVELS.get(level.lower(), level)
    message = fields["message"]
    extra: dict[str, str] = {
        "provider": fields["provider"],
        "event_id": fields["event_id"],
        "level": level,
        "channel": fields["channel"],
        "computer": fields["computer"],
        "message": message,
    }
    for name, value in named.items():
        extra.setdefault(name.lower(), value)
    for common, names in _COMMON_NAMES:
        value = next((extra[n] for n in names if extra.get(n) not in (None, "", "-")), "")
        extra.setdefault(common, value)
    if fields["provider"].lower() == CMDLET_PROVIDER:
        for name, pos in _CMDLET_POSITIONS:
            extra[name] = positional[pos] if len(positional) > pos else ""
        found = _CMDLET_MESSAGE.search(message) if not extra["cmdlet"] else None
        if found:
            extra["cmdlet"], extra["parameters"] = found.group(1), found.group(2)
    values = [f"{k}={v}" for k, v in named.items() if v] + [v for v in positional if v]
    if message:
        values.append(message)
    extra["data"] = " | ".join(values)
    extra["_source"] = channel_source(fields["channel"], fields["provider"])
    raw = (
        f"{fields['channel']} {fields['provider']} EventID {fields['event_id']} "
        f"Level {level}: {extra['data']}"
    )
    timestamp = iso_utc(fields["time"])
    return Record(Kind.EVTX, rel, number, raw, [], _EMPTY_INDEX, timestamp, extra)


def file_records(
    path: Path, stats: FileStats, parse_stream: Callable[[IO[bytes]], Iterator[Record]]
) -> Iterator[Record]:
    """The records `parse_stream` reads from the file at `path` opened in binary; an
    unreadable file is an error in its stats, never an exception."""
    try:
        stats.size = path.stat().st_size
        with path.open("rb") as fh:
            yield from parse_stream(fh)
    except OSError as exc:
        stats.error = f"cannot read: {exc.strerror or exc}"


__all__ = [
    "CHANNEL_SOURCES",
    "CMDLET_PROVIDER",
    "channel_source",
    "event_parts",
    "file_records",
    "iso_utc",
    "parse_event_xml",
    "record_from_event",
    "text_of",
]
