"""The scan record: one JSON object per target address, whatever happened to it.

Every record starts from `new_record`, so a host the probes reached and one that never got
that far (bad name, blocklisted, crash) carry the same keys.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1


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


__all__ = ["SCHEMA_VERSION", "new_record"]
