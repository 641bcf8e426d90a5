"""The scan record: one JSON object per target address, whatever happened to it.

Every record starts from `new_record`, so a host the probes reached and one that never got
that far (bad name, blocklisted, crash) carry the same keys.
"""

from __future__ import annotations

import time
from typing import Any

SCHEMA_VERSION = 1

_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def timestamp_now() -> str:
    """Now in UTC as a record's `timestamp` writes it: `2026-12-05T11:12:13.456Z`."""
    return timestamp_at(time.time_ns())


def timestamp_at(ns: int) -> str:
    """`ns` nanoseconds after the epoch as datetime's isoformat writes it with milliseconds
    (cut, not rounded), and Z: at a fifth of datetime's cost, because the seconds' text is
    made once per second and a scan stamps hundreds of records each second."""
    global _second
    seconds, rest = divmod(ns, 1_000_000_000)
    if _second[0] != seconds:
        _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{_second[1]}.{rest // 1_000_000:03d}Z"


def new_record(
    ip: str | None, port: int, hostname: str | None, timestamp: str, status: str, error: str | None
) -> dict[str, Any]:
    """A record with every field present and nothing found yet."""
    return {
        "schema_version": SCHEMA_VERSION,
        "ip": ip,
        "port": port,
        "hostname": hostname,
        "timestamp": timestamp,
        "duration_ms": 0.0,
        "status": status,
        "error": error,
        "exchange": None,  # on-prem Exchange only (what every count and verdict reads)
        "exchange_online": None,  # Microsoft's own front ends: never counted as on-prem
        "suspect": None,  # claims Exchange, fails a plausibility check: counted apart
        "cves": {},
        "tls": None,
        "ntlm": None,
        "headers": {},
        "http_status": None,
        "checks": None,  # the opt-in checks (--check): null where none was asked or none ran
    }


__all__ = ["SCHEMA_VERSION", "new_record", "timestamp_at", "timestamp_now"]
