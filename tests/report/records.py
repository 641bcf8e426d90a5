"""Scan records per the shared contract, with public addresses (never contacted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HOSTILE = "<script>alert(1)</script>"
CVE_A = "CVE-2021-26855"
CVE_B = "CVE-2021-34473"


def record(
    scan_id: str,
    ip: str,
    when: str,
    *,
    status: str = "success",
    exchange: bool = True,
    vulnerable: tuple[str, ...] = (),
    eol: bool = False,
    hostile: bool = False,
) -> dict[str, Any]:
    cves = {c: ("vulnerable" if c in vulnerable else "patched") for c in (CVE_A, CVE_B)}
    answered = status == "success"
    is_exchange = answered and exchange
    text = HOSTILE if hostile else None
    return {
        "schema_version": 1,
        "scan_id": scan_id,
        "ip": ip,
        "port": 443,
        "hostname": text,
        "timestamp": f"{when}T08:00:00Z",
        "duration_ms": 42.0,
        "status": status,
        "error": None if answered else "timed out",
        "exchange": {
            "build": "15.1.2507.6" if vulnerable else "15.1.2507.39",
            "precision": "su",
            "product": "Exchange Server 2016",
            "cu": "CU23",
            "su": None,
            "eol": eol,
            "known": True,
            "sources": ["x-owa-version"],
            "builds_seen": ["15.1.2507.6"],
        }
        if is_exchange
        else None,
        "cves": cves if is_exchange else {},
        "tls": {"subject_cn": text, "subject": f"CN={text}", "issuer": "CN=Test CA"}
        if hostile
        else None,
        "ntlm": {"dns_domain": text, "netbios_domain": text, "netbios_computer": text}
        if hostile
        else None,
        "headers": {"server": "Microsoft-IIS/10.0", **({"x-feserver": text} if hostile else {})},
        "http_status": 200 if answered else None,
    }


# host number -> address (country by RIR registration, via iptocc)
IP = {
    1: "193.190.253.144",  # BE, constituency: municipality
    2: "193.190.1.10",  # BE, municipality
    3: "193.191.1.1",  # BE, no constituency entry
    4: "193.191.1.2",  # BE, never answers
    5: "145.100.1.1",  # NL, health
    6: "145.97.1.1",  # NL, education
    7: "145.97.1.2",  # NL, education
    8: "194.2.0.1",  # FR
    9: "8.8.8.8",  # US
    10: "130.149.1.1",  # DE
    11: "145.100.1.9",  # NL, health
    12: "193.191.1.5",  # BE
}

CONSTITUENCY = """match,organisation,sector,country
193.190.0.0/16,Gemeente Voorbeeld,municipality,BE
145.100.0.0/16,Ziekenhuis Voorbeeld,health,NL
145.97.0.0/16,Universiteit Voorbeeld,education,NL
"""


def three_scans(hostile: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Three scans of the same hosts; the story of each host is told in test_trends.py."""
    h = hostile
    s1, d1 = "scan-1", "2026-01-10"
    s2, d2 = "scan-2", "2026-02-15"
    s3, d3 = "scan-3", "2026-03-20"
    return {
        s1: [
            record(s1, IP[1], d1, vulnerable=(CVE_A,), eol=True, hostile=h),
            record(s1, IP[2], d1, vulnerable=(CVE_A,)),
            record(s1, IP[5], d1),
            record(s1, IP[7], d1, vulnerable=(CVE_A,)),
            record(s1, IP[8], d1, vulnerable=(CVE_A,), eol=True),
            record(s1, IP[10], d1, vulnerable=(CVE_A,)),
            record(s1, IP[11], d1, vulnerable=(CVE_A,)),
        ],
        s2: [
            record(s2, IP[1], d2, vulnerable=(CVE_A,), eol=True, hostile=h),
            record(s2, IP[2], d2),
            record(s2, IP[5], d2, vulnerable=(CVE_A, CVE_B)),
            record(s2, IP[7], d2, status="connection-timeout"),
            record(s2, IP[10], d2, vulnerable=(CVE_A,)),
            record(s2, IP[11], d2, vulnerable=(CVE_A,)),
            record(s2, IP[12], d2, vulnerable=(CVE_A,)),
        ],
        s3: [
            record(s3, IP[1], d3, vulnerable=(CVE_A,), eol=True, hostile=h),
            record(s3, IP[2], d3),
            record(s3, IP[3], d3, exchange=False),
            record(s3, IP[4], d3, status="connection-timeout"),
            record(s3, IP[5], d3, vulnerable=(CVE_A, CVE_B)),
            record(s3, IP[6], d3, vulnerable=(CVE_A,), eol=True),
            record(s3, IP[7], d3),
            record(s3, IP[8], d3, eol=True),
            record(s3, IP[9], d3, exchange=False),
            record(s3, IP[10], d3, vulnerable=(CVE_A,)),
            record(s3, IP[12], d3, exchange=False),
        ],
    }


def write_jsonl(folder: Path, scans: dict[str, list[dict[str, Any]]]) -> list[Path]:
    paths = []
    for scan_id, records in scans.items():
        path = folder / f"{scan_id}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        paths.append(path)
    return paths
