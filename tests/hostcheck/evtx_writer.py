"""A small EVTX writer for test fixtures: files the `evtx` package reads like Windows' own.

Layout as Windows writes it (file header, 64 KiB chunks, records whose binary XML is a
template instance with its template defined inline), with the CRC32 checksums filled in.
Every element name is stored inline and every value is a literal in the template (no
substitutions): the simplest stream a real reader must accept.  Written from the format
descriptions (libevtx's format document, MS-EVEN6), not from another writer.

    write_evtx(path, [event(...), ...], records_per_chunk=...)
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CHUNK_SIZE = 0x10000
FILE_HEADER_SIZE = 0x1000
CHUNK_HEADER_SIZE = 0x200
EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"


@dataclass
class Element:
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)
    text: str | None = None


def event(
    *,
    channel: str,
    provider: str,
    event_id: int,
    data: dict[str, str] | list[str] | None = None,
    level: int = 4,
    time: str = "2021-03-14T01:40:15.342000Z",
    computer: str = "EXCH01.contoso.local",
    record_id: int = 1,
    user_data: dict[str, dict[str, str]] | None = None,
) -> Element:
    """An <Event> as Windows renders it; `data` named (Sysmon) or positional (cmdlets)."""
    system = Element(
        "System",
        children=[
            Element("Provider", {"Name": provider}),
            Element("EventID", text=str(event_id)),
            Element("Level", text=str(level)),
            Element("TimeCreated", {"SystemTime": time}),
            Element("EventRecordID", text=str(record_id)),
            Element("Channel", text=channel),
            Element("Computer", text=computer),
        ],
    )
    body: list[Element] = [system]
    if user_data is not None:
        body.append(
            Element(
                "UserData",
                children=[
                    Element(name, children=[Element(k, text=v) for k, v in fields.items()])
                    for name, fields in user_data.items()
                ],
            )
        )
    else:
        items = data or {}
        if isinstance(items, dict):
            datas = [Element("Data", {"Name": k}, text=v) for k, v in items.items()]
        else:
            datas = [Element("Data", text=v) for v in items]
        body.append(Element("EventData", children=datas))
    return Element("Event", {"xmlns": EVENT_NS}, children=body)


def _name_hash(name: str) -> int:
    value = 0
    for unit in struct.unpack(f"<{len(name)}H", name.encode("utf-16-le")):
        value = (value * 65599 + unit) & 0xFFFFFFFF
    return value & 0xFFFF


class _Stream:
    """Binary XML of one record, tracking chunk offsets (inline names need them)."""

    def __init__(self, base: int) -> None:
        self.base = base  # chunk offset of the first byte written
        self.buf = bytearray()

    @property
    def pos(self) -> int:
        return self.base + len(self.buf)

    def name(self, name: str) -> None:
        # Offset pointing right after itself = the name follows inline.
        self.buf += struct.pack("<I", self.pos + 4)
        encoded = name.encode("utf-16-le")
        self.buf += struct.pack("<IHH", 0, _name_hash(name), len(name)) + encoded + b"\0\0"

    def value(self, text: str) -> None:
        encoded = text.encode("utf-16-le")
        self.buf += b"\x05\x01" + struct.pack("<H", len(encoded) // 2) + encoded

    def element(self, elem: Element) -> None:
        token = 0x41 if elem.attrs else 0x01
        self.buf += bytes([token]) + struct.pack("<H", 0xFFFF)
        size_at = len(self.buf)
        self.buf += b"\0\0\0\0"  # data size, filled in below
        self.name(elem.name)
        if elem.attrs:
            attr_size_at = len(self.buf)
            self.buf += b"\0\0\0\0"
            start = len(self.buf)
            items = list(elem.attrs.items())
            for i, (key, val) in enumerate(items):
                self.buf += bytes([0x46 if i < len(items) - 1 else 0x06])
                self.name(key)
                self.value(val)
            struct.pack_into("<I", self.buf, attr_size_at, len(self.buf) - start)
        if elem.children or elem.text is not None:
            self.buf += b"\x02"
            if elem.text is not None:
                self.value(elem.text)
            for child in elem.children:
                self.element(child)
            self.buf += b"\x04"
        else:
            self.buf += b"\x03"
        struct.pack_into("<I", self.buf, size_at, len(self.buf) - size_at - 4)


def _record_xml(elem: Element, base: int, template_id: int) -> bytes:
    out = _Stream(base)
    out.buf += b"\x0f\x01\x01\x00"  # fragment header
    out.buf += b"\x0c\x01" + struct.pack("<I", template_id)
    definition = out.pos + 4
    out.buf += struct.pack("<I", definition)
    header_at = len(out.buf)
    out.buf += struct.pack("<I", 0) + template_id.to_bytes(16, "little") + b"\0\0\0\0"
    body_start = len(out.buf)
    out.buf += b"\x0f\x01\x01\x00"
    out.element(elem)
    out.buf += b"\x00"  # end of template body
    struct.pack_into("<I", out.buf, header_at + 20, len(out.buf) - body_start)
    out.buf += struct.pack("<I", 0)  # no substitution values
    return bytes(out.buf)


def _filetime(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    epoch = datetime(1601, 1, 1, tzinfo=UTC)
    return int((moment - epoch).total_seconds() * 10_000_000)


def _chunk(events: list[tuple[int, Element]]) -> bytes:
    data = bytearray(CHUNK_SIZE)
    data[:8] = b"ElfChnk\x00"
    offset = CHUNK_HEADER_SIZE
    last_offset = offset
    for record_id, elem in events:
        base = offset + 24
        xml = _record_xml(elem, base, 1000 + record_id)
        size = 24 + len(xml) + 4
        if offset + size > CHUNK_SIZE:
            raise ValueError("records do not fit in one chunk")
        when = next(
            (c.attrs["SystemTime"] for c in elem.children[0].children if c.name == "TimeCreated"),
            "2021-03-14T01:40:15Z",
        )
        data[offset : offset + 24] = struct.pack(
            "<4sIQQ", b"\x2a\x2a\x00\x00", size, record_id, _filetime(when)
        )
        data[offset + 24 : offset + 24 + len(xml)] = xml
        data[offset + size - 4 : offset + size] = struct.pack("<I", size)
        last_offset = offset
        offset += size
    first_id, last_id = events[0][0], events[-1][0]
    struct.pack_into("<QQQQ", data, 8, first_id, last_id, first_id, last_id)
    struct.pack_into("<III", data, 40, 0x80, last_offset, offset)
    struct.pack_into("<I", data, 52, zlib.crc32(bytes(data[CHUNK_HEADER_SIZE:offset])))
    header_crc = zlib.crc32(bytes(data[:120]) + bytes(data[128:CHUNK_HEADER_SIZE]))
    struct.pack_into("<I", data, 124, header_crc)
    return bytes(data)


def evtx_bytes(events: list[Element], records_per_chunk: int = 50) -> bytes:
    """An EVTX file holding `events` (record ids 1..n, in order)."""
    numbered = list(enumerate(events, start=1))
    chunks = [
        _chunk(numbered[i : i + records_per_chunk])
        for i in range(0, len(numbered), records_per_chunk)
    ]
    header = bytearray(FILE_HEADER_SIZE)
    struct.pack_into(
        "<8sQQQIHHHH",
        header,
        0,
        b"ElfFile\x00",
        0,
        max(len(chunks) - 1, 0),
        len(events) + 1,
        0x80,
        2,
        3,
        FILE_HEADER_SIZE,
        len(chunks),
    )
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
    return bytes(header) + b"".join(chunks)


def write_evtx(path: Path, events: list[Element], records_per_chunk: int = 50) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(evtx_bytes(events, records_per_chunk))
    return path


def record_offsets(blob: bytes) -> list[int]:
    """File offsets of every record signature (to damage one in a test)."""
    out = []
    start = FILE_HEADER_SIZE
    while start < len(blob):
        chunk = blob[start : start + CHUNK_SIZE]
        at = CHUNK_HEADER_SIZE
        while at + 8 <= len(chunk) and chunk[at : at + 4] == b"\x2a\x2a\x00\x00":
            out.append(start + at)
            at += struct.unpack_from("<I", chunk, at + 4)[0]
        start += CHUNK_SIZE
    return out


__all__ = ["Element", "event", "evtx_bytes", "record_offsets", "write_evtx"]
