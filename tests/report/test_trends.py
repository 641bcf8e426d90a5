"""Trends over three scans: host histories, transitions, long-vulnerable hosts, scan diffs.

Story (see records.py): host 1 (BE) and 10 (DE) vulnerable in all three scans; host 2 (BE)
patched after scan 1; host 5 (NL) patched, then vulnerable again from scan 2; host 7 (NL)
vulnerable, silent in scan 2, patched in scan 3; host 8 (FR) vulnerable then patched; host 11
(NL) vulnerable and gone in scan 3; host 12 (BE) vulnerable in scan 2, not Exchange in scan 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exwatch.cli import main


def _json(tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    out = tmp_path / "out.json"
    assert main([*args, "--format", "json", "-o", str(out)]) == 0
    rows: list[dict[str, Any]] = json.loads(out.read_text(encoding="utf-8"))
    return rows


def test_trend_per_scan(store, tmp_path):
    db, _ = store
    rows = _json(tmp_path, "report", "--db", str(db), "--by", "scan")
    got = [(r["scan_id"], r["hosts"], r["exchange"], r["vulnerable"], r["eol"]) for r in rows]
    assert got == [
        ("scan-1", 7, 7, 6, 2),
        ("scan-2", 6, 6, 5, 1),
        ("scan-3", 10, 7, 4, 3),
    ]
    be = _json(tmp_path, "report", "--db", str(db), "--by", "scan", "--country", "BE")
    assert [r["vulnerable"] for r in be] == [2, 2, 1]


def test_host_history_and_still_vulnerable_after_n_days(store, tmp_path):
    db, _ = store
    hosts = {(h["ip"]): h for h in _json(tmp_path, "report", "--db", str(db), "--by", "host")}
    one = hosts["193.190.253.144"]
    assert (one["first_seen"], one["last_seen"]) == ("2026-01-10T08:00:00Z", "2026-03-20T08:00:00Z")
    assert (one["vulnerable_now"], one["vulnerable_since"], one["days_vulnerable"]) == (
        True, "2026-01-10T08:00:00Z", 69,
    )  # fmt: skip
    two = hosts["193.190.1.10"]
    assert (two["vulnerable_now"], two["patched_transitions"], two["days_vulnerable"]) == (
        False, 1, None,
    )  # fmt: skip
    five = hosts["145.100.1.1"]
    assert (five["regressions"], five["vulnerable_since"], five["days_vulnerable"]) == (
        1, "2026-02-15T08:00:00Z", 33,
    )  # fmt: skip
    seven = hosts["145.97.1.2"]  # silent in scan 2: two sightings, patched between them
    assert (seven["sightings"], seven["patched_transitions"]) == (2, 1)
    assert "8.8.8.8" not in hosts  # never Exchange

    old = _json(tmp_path, "report", "--db", str(db), "--by", "host", "--vulnerable-days", "60")
    assert sorted(h["ip"] for h in old) == ["130.149.1.1", "193.190.253.144"]
    month = _json(tmp_path, "report", "--db", str(db), "--by", "host", "--vulnerable-days", "30")
    assert sorted(h["ip"] for h in month) == [
        "130.149.1.1", "145.100.1.1", "145.100.1.9", "193.190.253.144",
    ]  # fmt: skip


def _diff(rows: list[dict[str, Any]]) -> dict[Any, tuple[Any, ...]]:
    keys = ("vulnerable_a", "vulnerable_b", "patched", "still_vulnerable", "not_seen",
            "no_longer_exchange", "newly_vulnerable", "patch_rate")  # fmt: skip
    return {r["key"]: tuple(r[k] for k in keys) for r in rows}


def test_diff_first_and_last_scan(store, tmp_path):
    db, _ = store
    rows = _json(tmp_path, "diff", "scan-1", "scan-3", "--db", str(db))
    assert _diff(rows) == {
        "BE": (2, 1, 1, 1, 0, 0, 0, 50.0),
        "NL": (2, 2, 1, 0, 1, 0, 2, 100.0),
        "FR": (1, 0, 1, 0, 0, 0, 0, 100.0),
        "DE": (1, 1, 0, 1, 0, 0, 0, 0.0),
    }
    assert all("RIR registration" in r["geo_source"] for r in rows)


def test_diff_consecutive_scans_and_hosts(store, tmp_path):
    db, _ = store
    rows = _json(tmp_path, "diff", "scan-2", "scan-3", "--db", str(db), "--by", "total")
    assert _diff(rows) == {"all": (5, 4, 0, 3, 1, 1, 1, 0.0)}
    changes = _json(tmp_path, "diff", "scan-2", "scan-3", "--db", str(db), "--hosts")
    got = {(c["ip"], c["before"], c["after"]) for c in changes}
    assert got == {
        ("145.100.1.9", "vulnerable", "not-seen"),
        ("193.191.1.5", "vulnerable", "other"),
        ("145.97.1.1", "not-seen", "vulnerable"),
    }
