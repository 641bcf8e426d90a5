"""Defects a first real session found in reports, exports and enrichment (issues 10 and 11),
each reproduced on both backends."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exwatch.cli import main
from tests.report.records import CONSTITUENCY, IP, record, three_scans, write_jsonl

EXWATCH = [sys.executable, "-m", "exwatch"]


def _ingest(db: str, folder: Path, scans: dict[str, list[dict[str, Any]]]) -> None:
    assert main(["ingest", "--db", db, *map(str, write_jsonl(folder, scans))]) == 0


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main([*args, "--format", "json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_enrichment_options_are_never_silently_ignored(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ingest(db, tmp_path, three_scans())
    constituency = tmp_path / "c.csv"
    constituency.write_text(CONSTITUENCY, encoding="utf-8")
    # First use enriches with the defaults: no sectors.
    plain = _json(capsys, "report", "--db", db, "--by", "sector")
    assert {r["key"] for r in plain} == {"unknown"}
    assert plain[0]["constituency_source"] == "none"
    # Defect: a later --constituency said "enriched 0 results" and sectors stayed unknown.
    capsys.readouterr()
    args = ["--by", "sector", "--format", "json", "--constituency", str(constituency)]
    assert main(["report", "--db", db, *args]) == 0
    captured = capsys.readouterr()
    assert "scan scan-3 was enriched with other options; enriched it again" in captured.err
    assert "constituency: c.csv (3 entries" in captured.err
    sectors = {r["key"] for r in json.loads(captured.out)}
    assert sectors == {"municipality", "health", "education", "unknown"}
    # No options: the store keeps what it was last enriched with (no silent downgrade).
    again = _json(capsys, "report", "--db", db, "--by", "sector")
    assert {r["key"] for r in again} == sectors
    assert again[0]["constituency_source"].startswith("c.csv (3 entries, sha256 ")
    # The report re-enriched the scan it read; `enrich` brings the older scans in line, once.
    assert main(["enrich", "--db", db, "--constituency", str(constituency)]) == 0
    assert capsys.readouterr().out.startswith("enriched 13 results in 2 scans (country: iptocc")
    assert main(["enrich", "--db", db, "--constituency", str(constituency)]) == 0
    assert capsys.readouterr().out.startswith("enriched 0 results in 0 scans (country: iptocc")
    constituency.write_text(CONSTITUENCY.replace("health", "education"), encoding="utf-8")
    assert main(["enrich", "--db", db, "--constituency", str(constituency)]) == 0
    assert capsys.readouterr().out.startswith("enriched 23 results in 3 scans")
    assert "health" not in {r["key"] for r in _json(capsys, "report", "--db", db, "--by", "sector")}


def test_a_census_without_answering_hosts_reports_empty_tables(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    silent = {
        "quiet": [record("quiet", IP[i], "2026-01-10", status="connection-timeout") for i in (1, 2)]
    }
    _ingest(db, tmp_path, silent)
    views = ("country", "asn", "sector", "organisation", "version", "cve", "months", "kev")
    for by in (*views, "host", "scan"):
        capsys.readouterr()
        # Defect: "Table with name enrichment does not exist" from every report.
        assert main(["report", "--db", db, "--by", by]) == 0, by
        out = capsys.readouterr().out
        assert "Country:" in out
    assert _json(capsys, "report", "--db", db) == []
    assert _json(capsys, "report", "--db", db, "--by", "kev") == []
    assert {r["exchange"] for r in _json(capsys, "report", "--db", db, "--by", "months")} == {0}
    html = tmp_path / "r.html"
    assert main(["report", "--db", db, "--format", "html", "-o", str(html)]) == 0
    assert "<table" in html.read_text(encoding="utf-8")
    capsys.readouterr()
    # Defect: export printed a CSV header, then failed.
    assert main(["export", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines() == [",".join(_shadowserver_columns())]
    for fmt in ("jsonl", "parquet"):
        target = tmp_path / f"x.{fmt}"
        assert main(["export", "--db", db, "--format", fmt, "-o", str(target)]) == 0
        assert target.exists()
    assert main(["diff", "quiet", "quiet", "--db", db]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def _shadowserver_columns() -> tuple[str, ...]:
    from exwatch.report.exports import SHADOWSERVER_COLUMNS

    return SHADOWSERVER_COLUMNS


def test_diff_by_sector_keeps_a_sector_b_could_not_tell(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The sector comes from the certificate; in scan B the certificate is gone.
    constituency = tmp_path / "c.csv"
    constituency.write_text(
        "match,organisation,sector,country\nvoorbeeld.be,Gemeente,municipality,BE\n",
        encoding="utf-8",
    )
    a = record("a", "8.8.4.4", "2026-01-10", vulnerable=("CVE-2021-26855",))
    a["tls"] = {"subject_cn": "mail.voorbeeld.be"}
    b = record("b", "8.8.4.4", "2026-02-10", vulnerable=("CVE-2021-26855",))
    _ingest(db, tmp_path, {"a": [a], "b": [b]})
    capsys.readouterr()
    assert main(["enrich", "--db", db, "--constituency", str(constituency)]) == 0
    rows = _json(capsys, "diff", "a", "b", "--db", db, "--by", "sector")
    # Defect: coalesce(b, a) took B's "unknown" over A's sector.
    assert [(r["key"], r["still_vulnerable"]) for r in rows] == [("municipality", 1)]


def test_host_tables_sorted_by_address_and_readable_at_80_columns(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ips = ["8.8.8.100", "8.8.8.9", "8.8.8.10", "8.8.8.2", "2001:db8::10", "2001:db8::9"]
    _ingest(db, tmp_path, {"s": [record("s", ip, "2026-01-10") for ip in ips]})
    hosts = _json(capsys, "report", "--db", db, "--by", "host")
    assert [h["ip"] for h in hosts] == [
        "8.8.8.2", "8.8.8.9", "8.8.8.10", "8.8.8.100", "2001:db8::9", "2001:db8::10",
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run(
        [*EXWATCH, "report", "--db", db, "--by", "host"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout  # fmt: skip
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(any(ip in line for line in lines) for ip in ips)  # never cut or folded
    body = [line.split()[0] for line in lines if line.strip()[:1].isdigit()]
    assert body == [h["ip"] for h in hosts]


FORMULA = "=cmd|' /C calc'!A0"


def test_shadowserver_csv_neutralises_formulas(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = record("f", "8.8.4.4", "2026-01-10", vulnerable=("CVE-2021-26855",))
    hostile["hostname"] = FORMULA
    hostile["ntlm"] = {"netbios_computer": "@SUM(1+1)*cmd|' /C calc'!A0"}
    _ingest(db, tmp_path, {"f": [hostile]})
    capsys.readouterr()
    assert main(["export", "--db", db]) == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    # Defect: written as is, so Excel ran it when a constituent opened the file.
    assert row["hostname"] == "'" + FORMULA
    assert row["servername"].startswith("'@SUM")
    assert row["url"] == "https://8.8.4.4:443/owa/"
    assert main(["export", "--db", db, "--raw"]) == 0
    raw = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert raw["hostname"] == FORMULA
    assert main(["report", "--db", db, "--by", "host", "--format", "csv"]) == 0
    assert "\n=" not in capsys.readouterr().out
