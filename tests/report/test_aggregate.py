"""Per-country and per-sector numbers from a real store, checked exactly (offline RIR data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exwatch.cli import main


def _report(db: Path, tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    out = tmp_path / "out.json"
    assert main(["report", "--db", str(db), "--format", "json", "-o", str(out), *args]) == 0
    rows: list[dict[str, Any]] = json.loads(out.read_text(encoding="utf-8"))
    return rows


def _counts(rows: list[dict[str, Any]]) -> dict[Any, tuple[Any, ...]]:
    return {r["key"]: (r["hosts"], r["exchange"], r["vulnerable"], r["eol"]) for r in rows}


def test_by_country_latest_scan(store, tmp_path):
    db, _ = store
    rows = _report(db, tmp_path, "--by", "country")
    # The timeout address (193.191.1.2) answers nothing and is not a host.
    assert _counts(rows) == {
        "BE": (4, 2, 1, 1),
        "NL": (3, 3, 2, 1),
        "DE": (1, 1, 1, 0),
        "FR": (1, 1, 0, 1),
        "US": (1, 0, 0, 0),
    }
    be = next(r for r in rows if r["key"] == "BE")
    assert be["name"] == "Belgium"
    assert (be["exchange_pct"], be["vulnerable_pct"], be["eol_pct"]) == (50.0, 50.0, 50.0)
    us = next(r for r in rows if r["key"] == "US")
    assert us["vulnerable_pct"] is None  # no Exchange host: no percentage, not 0
    assert all(r["scan_id"] == "scan-3" for r in rows)
    assert all("RIR registration" in r["geo_source"] for r in rows)
    assert all(r["geo_source"].startswith("iptocc ") for r in rows)


def test_by_sector_from_constituency(store, tmp_path):
    db, _ = store
    rows = _report(db, tmp_path, "--by", "sector")
    assert _counts(rows) == {
        "municipality": (2, 2, 1, 1),
        "health": (1, 1, 1, 0),
        "education": (2, 2, 1, 1),
        "unknown": (5, 2, 1, 1),
    }


def test_by_country_of_an_older_scan_and_filtered(store, tmp_path):
    db, _ = store
    assert _counts(_report(db, tmp_path, "--scan", "scan-1")) == {
        "NL": (3, 3, 2, 0),
        "BE": (2, 2, 2, 1),
        "DE": (1, 1, 1, 0),
        "FR": (1, 1, 1, 1),
    }
    assert _counts(_report(db, tmp_path, "--by", "organisation", "--country", "nl")) == {
        "Ziekenhuis Voorbeeld": (1, 1, 1, 0),
        "Universiteit Voorbeeld": (2, 2, 1, 1),
    }


def test_by_cve_and_version(store, tmp_path):
    db, _ = store
    cves = {r["key"]: r for r in _report(db, tmp_path, "--by", "cve")}
    assert (cves["CVE-2021-26855"]["vulnerable"], cves["CVE-2021-26855"]["patched"]) == (4, 3)
    assert (cves["CVE-2021-34473"]["vulnerable"], cves["CVE-2021-34473"]["patched"]) == (1, 6)
    versions = _counts(_report(db, tmp_path, "--by", "version"))
    assert versions == {"15.1.2507.6": (4, 4, 4, 2), "15.1.2507.39": (3, 3, 0, 1)}


def test_csv_and_table_state_the_source(store, tmp_path):
    db, _ = store
    out = tmp_path / "c.csv"
    assert main(["report", "--db", str(db), "--format", "csv", "-o", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("key,name,hosts,exchange,vulnerable,vulnerable_pct,eol,eol_pct")
    assert "geo_source" in lines[0]
    assert len(lines) == 6
    table = tmp_path / "t.txt"
    assert main(["report", "--db", str(db), "-o", str(table)]) == 0
    assert "Country: iptocc" in table.read_text(encoding="utf-8")


def test_usage_errors(store, tmp_path):
    db, _ = store
    assert main(["report", "--db", str(db), "--scan", "nope"]) == 2
    assert main(["report", "--db", str(db), "--country", "Belgium"]) == 2
    assert main(["report", "--db", str(db), "--vulnerable-days", "3"]) == 2
    assert main(["report", "--db", str(tmp_path / "none.duckdb")]) == 2


def test_reenrich_adds_nothing_twice(store):
    db, constituency = store
    assert main(["enrich", "--db", str(db), "--constituency", str(constituency)]) == 0
    from exwatch.store import open_store

    with open_store(db, read_only=True) as handle:
        rows = handle.query(
            "SELECT count(*), count(DISTINCT scan_id || ip || CAST(port AS VARCHAR))"
            " FROM enrichment"
        )
    assert rows == [(23, 23)]


def test_rollup_counted_while_enriching_equals_a_full_build(store):
    from exwatch.report import aggregate
    from exwatch.store import open_store

    db, _ = store
    with open_store(db) as handle:
        dims = aggregate.GROUPS
        scans = handle.scan_ids()
        built = {
            (s, by): [r.to_json() for r in aggregate.group_counts(handle, s, by)]
            for s in scans
            for by in dims
        }
        assert handle.query("SELECT count(*) FROM rollup_state") == [(3,)]
        handle.execute("DELETE FROM rollup_state")  # stale: the next report builds it in SQL
        again = {
            (s, by): [r.to_json() for r in aggregate.group_counts(handle, s, by)]
            for s in scans
            for by in dims
        }
    assert again == built
