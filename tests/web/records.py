"""Stores for the web tests: the report tests' three scans, plus hostile server strings."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from exwatch.cli import main
from tests.report.records import CONSTITUENCY, IP, record, three_scans, write_jsonl
from tests.store.backends import new_target

# What a hostile server puts where a name should be: markup, event handlers, script URLs,
# terminal escapes and bidirectional overrides.  Each would set window.__pwned if it ran.
HOSTILE = {
    "script": "<script>window.__pwned='script'</script>",
    "img": "<img src=x onerror=\"window.__pwned='img'\">",
    "attr": "\"><svg onload=window.__pwned='svg'>",
    "url": "javascript:window.__pwned='url'",
    "ansi": "\x1b[31mRED\x1b[0m\x1b]0;title\x07",
    "rtl": "mail.\u202eexe.evil\u202c.example",
    "formula": '=HYPERLINK("http://192.0.2.1/","click")',
}
HOSTILE_IP = "193.190.77.7"


def hostile_record(scan_id: str, when: str) -> dict[str, Any]:
    rec = record(scan_id, HOSTILE_IP, when, vulnerable=("CVE-2021-26855",), hostile=True)
    h = HOSTILE
    rec["hostname"] = h["url"]
    rec["tls"] = {
        "subject_cn": h["formula"],
        "subject": "CN=" + h["script"],
        "issuer": "CN=" + h["rtl"],
        "san": [h["attr"], h["ansi"]],
    }
    rec["ntlm"] = {
        "dns_domain": h["rtl"],
        "netbios_domain": h["ansi"],
        "netbios_computer": h["script"],
        "dns_computer": h["img"],
    }
    rec["headers"] = {
        "server": h["attr"],
        "x-feserver": h["script"],
        "x-owa-version": h["ansi"],
        "location": h["url"],
        h["img"]: h["rtl"],
    }
    rec["error"] = h["script"]
    return rec


def web_scans() -> dict[str, list[dict[str, Any]]]:
    scans = three_scans()
    for scan_id, when in (("scan-2", "2026-02-15"), ("scan-3", "2026-03-20")):
        scans[scan_id].append(hostile_record(scan_id, when))
    return scans


def build_store(folder: Path, backend: str, request: pytest.FixtureRequest) -> str:
    target = new_target(backend, folder, request, "web")
    constituency = folder / "constituency.csv"
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(
        [f"{HOSTILE_IP}/32", HOSTILE["img"], "municipality", "BE"]
    )
    constituency.write_text(CONSTITUENCY + line.getvalue(), encoding="utf-8")
    paths = write_jsonl(folder, web_scans())
    assert main(["ingest", "--db", target, *map(str, paths)]) == 0
    assert main(["enrich", "--db", target, "--constituency", str(constituency)]) == 0
    return target


__all__ = ["HOSTILE", "HOSTILE_IP", "IP", "build_store", "web_scans"]
