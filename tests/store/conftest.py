"""Synthetic scan records per the shared record contract, and a store on each backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.store.backends import backend, db, pg_database  # noqa: F401  (fixtures)


def make_record(
    i: int, scan_id: str | None = "scan-a", *, exchange: bool = True, second: int = 0
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "schema_version": 1,
        "ip": f"8.8.{i >> 8 & 255}.{i & 255}",
        "port": 443,
        "hostname": None,
        "timestamp": f"2026-11-23T17:00:{second:02d}.{i % 1000:03d}Z",
        "duration_ms": 10.0,
        "status": "success" if exchange else "connection-refused",
        "error": None if exchange else "refused",
        "exchange": {
            "build": "15.2.1118.7",
            "precision": "su",
            "product": "Exchange Server 2019",
            "cu": "CU12",
            "su": "Nov23SU",
            "eol": False,
            "known": True,
            "sources": ["x-owa-version"],
            "builds_seen": ["15.2.1118.7"],
        }
        if exchange
        else None,
        "cves": {"CVE-2023-21529": "vulnerable", "CVE-2021-26855": "patched"} if exchange else {},
        "tls": {
            "subject_cn": "mail.example.com",
            "issuer": "CN=R3",
            "sha256": "ab" * 32,
            "not_after": "2027-01-01T00:00:00Z",
        }
        if exchange
        else None,
        "ntlm": {"dns_domain": "example.com", "netbios_domain": "EX"} if exchange else None,
        "headers": {"server": "Microsoft-IIS/10.0"},
        "http_status": 200 if exchange else None,
    }
    if scan_id is not None:
        rec["scan_id"] = scan_id
    return rec


RecordFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def record() -> RecordFactory:
    return make_record
