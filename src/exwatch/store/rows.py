"""Record -> typed row: the one function both backends' bulk loaders use.

A record is one scan result as the scanner writes it (scan/record.py) or as a JSON line from
another machine.  Every field the store types is checked here; a record that fails is
rejected with a reason (ingest reports it with its line number), never stored half right.
Keys the store does not know are kept: the whole record is stored as JSON beside the typed
columns, so records may grow new keys without a schema change.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from exwatch.model import Status, Verdict
from exwatch.onprem import on_prem

STATUSES = frozenset(s.value for s in Status)
VERDICTS = frozenset(v.value for v in Verdict)
_CVE = re.compile(r"CVE-\d{4}-\d{4,7}\Z")
_BUILD = re.compile(r"\d{1,5}(\.\d{1,5}){1,3}\Z")
_SCAN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}\Z")
_SHARD = re.compile(r"(\d{1,6})/(\d{1,6})\Z")
_MAX_TEXT = 4096


class RecordError(ValueError):
    """Why a record cannot be stored (the message names the field)."""


def valid_scan_id(value: str) -> bool:
    return bool(_SCAN_ID.match(value))


def ip_sort_key(ip: str) -> str:
    """32 hex digits that sort addresses numerically (IPv4 as IPv4-mapped IPv6)."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return f"{0xFFFF00000000 | int(addr):032x}"
    return f"{int(addr):032x}"


def _text(record: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise RecordError(f"no {key}")
        return None
    if not isinstance(value, str):
        raise RecordError(f"{key} is {type(value).__name__}, not text")
    if len(value) > _MAX_TEXT:
        # A typed column is for grouping and display; the record JSON keeps the whole value.
        value = value[:_MAX_TEXT]
    # PostgreSQL text cannot hold NUL; the record JSON keeps the original (escaped).
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _sub(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(f"{key} is {type(value).__name__}, not an object")
    return value


def _bool(section: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = section.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise RecordError(f"{where}.{key} is {type(value).__name__}, not true/false")


def _int(value: object, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecordError(f"{name} {value!r} is not a whole number from {low} to {high}")
    return value


def parse_timestamp(value: object) -> str:
    """The timestamp in the one ISO 8601 form both databases read (UTC, with offset)."""
    if not isinstance(value, str):
        raise RecordError("no timestamp" if value is None else "timestamp is not text")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"timestamp {value[:40]!r} is not ISO 8601") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)  # the scanner writes UTC; a bare time is taken as UTC
    elif ts.utcoffset():
        ts = ts.astimezone(UTC)
    if not 1970 <= ts.year <= 9999:
        raise RecordError(f"timestamp {value[:40]!r} is out of range")
    return ts.isoformat()


def canonical_ip(value: str) -> str:
    """The address in its canonical text form (as `ipaddress` writes it, like the scanner);
    RecordError if it is none.  IPv4 takes the fast C path."""
    try:
        if ":" not in value:
            return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value))
        return str(ipaddress.IPv6Address(value))
    except (OSError, ValueError):
        raise RecordError(f"ip {value[:60]!r} is not an IP address") from None


def _cves(record: Mapping[str, Any]) -> dict[str, str]:
    value = record.get("cves")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(f"cves is {type(value).__name__}, not an object of CVE -> verdict")
    for cve, verdict in value.items():
        if not isinstance(cve, str) or not _CVE.match(cve):
            raise RecordError(f"cves: {str(cve)[:40]!r} is not a CVE id")
        if not isinstance(verdict, str) or verdict not in VERDICTS:
            raise RecordError(f"cves: {cve} has verdict {str(verdict)[:40]!r}")
    return dict(value)


def _text_list(section: Mapping[str, Any], key: str, where: str) -> list[str] | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{where}.{key} is not a list of text")
    return list(value)


def typed_row(
    record: Mapping[str, Any], default_scan_id: str | None = None, text: str | None = None
) -> tuple[Any, ...]:
    """The `results` row of one record (columns as RESULT_COLUMNS in schema.py).

    `text` is the record's JSON when the caller already has it (ingest reads lines).
    Raises RecordError naming the first field that is wrong.
    """
    if not isinstance(record, Mapping):
        raise RecordError("not a JSON object")
    scan_id = record.get("scan_id")
    if scan_id is None:
        scan_id = default_scan_id
        if scan_id is None:
            raise RecordError("no scan_id (ingest --scan-id NAME gives lines one)")
    if not isinstance(scan_id, str) or not _SCAN_ID.match(scan_id):
        raise RecordError(f"scan_id {str(scan_id)[:60]!r} is not a scan id")
    ip = _text(record, "ip", required=True)
    assert ip is not None
    ip = canonical_ip(ip)
    port = _int(record.get("port"), "port", 1, 65535)
    if port is None:
        raise RecordError("no port")
    ts = parse_timestamp(record.get("timestamp"))
    status = record.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        raise RecordError(f"status {str(status)[:40]!r} is not one of exwatch's statuses")
    duration = record.get("duration_ms")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0
    ):
        raise RecordError(f"duration_ms {duration!r} is not a number of milliseconds")
    shard = record.get("shard")
    if shard is not None and (not isinstance(shard, str) or not _SHARD.match(shard)):
        raise RecordError(f"shard {str(shard)[:20]!r} is not i/N")
    exchange = _sub(record, "exchange")
    build = _text(exchange, "build")
    if build is not None and not _BUILD.match(build):
        raise RecordError(f"exchange.build {build[:40]!r} is not a build number")
    cves = _cves(record)
    vulnerable = sorted(c for c, v in cves.items() if v == "vulnerable")
    tls, ntlm, headers = _sub(record, "tls"), _sub(record, "ntlm"), _sub(record, "headers")
    if text is None:
        text = json.dumps(record, separators=(",", ":"), default=str)
    return (
        scan_id,
        ip,
        port,
        _text(record, "hostname"),
        ts,
        None if duration is None else float(duration),
        status,
        _text(record, "error"),
        on_prem(record),  # is_exchange: on-prem Exchange, as every view counts it
        build,
        _text(exchange, "precision"),
        _text(exchange, "product"),
        _text(exchange, "cu"),
        _text(exchange, "su"),
        _bool(exchange, "eol", "exchange"),
        _bool(exchange, "known", "exchange"),
        _text_list(exchange, "sources", "exchange"),
        bool(vulnerable),
        vulnerable,
        sorted(c for c, v in cves.items() if v == "patched"),
        sorted(c for c, v in cves.items() if v == "undetermined"),
        sorted(cves),
        _int(record.get("http_status"), "http_status", 100, 999),
        _text(headers, "server"),
        _text(tls, "subject_cn"),
        _text(tls, "subject"),
        _text(tls, "issuer"),
        _text(tls, "not_after"),
        _text(tls, "sha256"),
        _text(ntlm, "dns_domain"),
        _text(ntlm, "dns_computer"),
        _text(ntlm, "netbios_domain"),
        _text(ntlm, "netbios_computer"),
        _text(headers, "x-feserver"),
        shard,
        text,
    )


__all__ = [
    "STATUSES",
    "VERDICTS",
    "RecordError",
    "canonical_ip",
    "ip_sort_key",
    "parse_timestamp",
    "typed_row",
    "valid_scan_id",
]
