"""Scan records for the notify tests, built like the scanner builds them (verdicts from the
shipped catalogue), with public addresses that are never contacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exwatch import assess
from exwatch.cli import main
from tests.store.backends import new_target

OLD = "15.1.2507.6"  # Exchange 2016 CU23 (2022): ProxyLogon-era CVEs fixed, many later ones not
OLDER = "15.1.2176.9"  # Exchange 2016 CU19 Mar21SU: ProxyShell (KEV) and more
CURRENT = "15.2.2562.53"  # Exchange SE, newest known update: nothing vulnerable
HOSTILE = "mail.\x1b[2J\x1b]8;;http://evil.example\x07evil\r\nBcc: victim@example.org\u202e<script>"


def exchange(
    scan_id: str,
    ip: str,
    when: str,
    build: str = OLD,
    *,
    hostname: str | None = None,
    cert: str | None = None,
    compromise: dict[str, Any] | None = None,
    status: str = "success",
) -> dict[str, Any]:
    found = assess(build).to_json()
    rec: dict[str, Any] = {
        "schema_version": 1,
        "scan_id": scan_id,
        "ip": ip,
        "port": 443,
        "hostname": hostname,
        "timestamp": f"{when}T08:00:00Z",
        "duration_ms": 30.0,
        "status": status,
        "error": None,
        "exchange": {
            "build": build,
            "precision": found["precision"],
            "product": found["product"],
            "cu": found["cu"],
            "su": found["su"],
            "eol": found["eol"],
            "known": found["known"],
            "sources": ["x-owa-version"],
            "builds_seen": [build],
            "patch_lag": found["patch_lag"],
            "basis": {},
        },
        "cves": found["cves"],
        "tls": {"subject_cn": cert, "issuer": "CN=R3"} if cert else None,
        "ntlm": None,
        "headers": {"server": "Microsoft-IIS/10.0"},
        "http_status": 200,
    }
    if compromise is not None:  # where the web-shell check writes it (docs/checks.md)
        rec["checks"] = {"asked": ["webshells"], "ran": ["webshells"], "compromise": compromise}
    return rec


def not_exchange(scan_id: str, ip: str, when: str) -> dict[str, Any]:
    rec = exchange(scan_id, ip, when)
    rec.update(exchange=None, cves={})
    return rec


def online(scan_id: str, ip: str, when: str) -> dict[str, Any]:
    """Exchange Online's own front end as the fingerprint helper records it; the old-style
    `exchange` object is kept too, to prove the `exchange_online` key alone decides."""
    rec = exchange(scan_id, ip, when)
    rec["exchange_online"] = {"product": "Exchange Online", "sources": ["online-fe-target"]}
    return rec


def suspect(scan_id: str, ip: str, when: str) -> dict[str, Any]:
    rec = exchange(scan_id, ip, when)
    rec["suspect"] = {"checks": ["build-vs-os"], "reasons": ["a 2010 build on Windows 2022"]}
    return rec


def write(folder: Path, name: str, records: list[dict[str, Any]]) -> Path:
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


CONSTITUENCY = """match,organisation,sector,country,contact,language
193.190.10.0/24,Gemeente Sint-Genesius-Rode,municipality,BE,ict@rode.example,nl
193.190.20.0/24,Région de Bruxelles-Capitale,public-administration,BE,csirt@bruxelles.example,fr-BE
193.190.30.0/24,Gemeinde Eupen,municipality,BE,it@eupen.example,de
193.190.40.0/24,Port of Antwerp,transport,BE,soc@port.example,
193.190.50.0/24,Geen Contact BV,unknown,BE,,nl
"""


def store_with(
    folder: Path,
    kind: str,
    request: pytest.FixtureRequest,
    scans: dict[str, list[dict[str, Any]]],
    constituency: str = CONSTITUENCY,
) -> tuple[str, Path]:
    """A store of this backend holding `scans` (ingested in order), and the constituency."""
    target = new_target(kind, folder, request, "store")
    const = folder / "constituency.csv"
    const.write_text(constituency, encoding="utf-8")
    paths = [write(folder, name, recs) for name, recs in scans.items()]
    for path in paths:
        assert main(["ingest", "--db", target, str(path)]) == 0
    assert main(["enrich", "--db", target, "--constituency", str(const)]) == 0
    return target, const
