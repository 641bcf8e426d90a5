"""`exwatch ingest` on both backends: validated, deduplicated, rejections named by line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exwatch.cli import main
from exwatch.store import ingest_files, open_store

RecordFactory = Callable[..., dict[str, Any]]


def write_jsonl(path: Path, records: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def test_ingest_is_idempotent_and_names_bad_lines(
    db: str, tmp_path: Path, record: RecordFactory
) -> None:
    good = [record(i, "shard-scan") for i in range(50)]
    shard = write_jsonl(
        tmp_path / "shard1.jsonl",
        [*good[:25], good[3]],  # a repeated line inside the file
        tail='garbage here\n\n[1, 2]\n{"ip": "8.8.8.8"}\n' + json.dumps(good[30])[:40],
    )
    with open_store(db) as store:
        first = ingest_files(store, [shard])
        assert (first.lines, first.new_rows, first.duplicates, first.bad_lines) == (30, 25, 1, 4)
        reasons = [(r.line, r.reason) for r in first.files[0].stats.rejections]
        assert reasons == [
            (27, "not JSON (truncated or corrupt line)"),
            (29, "not a JSON object"),
            (30, "no scan_id (ingest --scan-id NAME gives lines one)"),
            (31, "not JSON (truncated or corrupt line)"),
        ]
        again = ingest_files(store, [shard])
        assert again.new_rows == 0
        assert again.files[0].already_ingested
        # Same records in a different file (e.g. concatenated shards): identity dedup.
        bigger = write_jsonl(tmp_path / "shard1-full.jsonl", good)
        third = ingest_files(store, [bigger])
        assert (third.new_rows, third.duplicates, third.bad_lines) == (25, 25, 0)
        assert store.result_count("shard-scan") == 50
        info = store.scan_info("shard-scan")
        assert (info["origin"], info["status"]) == ("ingest", "ingested")
        assert json.loads(info["counts"]) == {"success": 50}


def test_every_field_is_validated(db: str, tmp_path: Path, record: RecordFactory) -> None:
    base = record(1, "v")
    bad = {
        "ip": base | {"ip": "999.1.1.1"},
        "port": base | {"port": 70000},
        "bool port": base | {"port": True},
        "timestamp": base | {"timestamp": "2026-13-45T00:00:00Z"},
        "status": base | {"status": "pwned"},
        "scan_id": base | {"scan_id": "a b;c"},
        "cves": base | {"cves": {"CVE-2021-26855": "maybe"}},
        "cve id": base | {"cves": {"<script>": "vulnerable"}},
        "build": base | {"exchange": base["exchange"] | {"build": "15.1.x"}},
        "eol": base | {"exchange": base["exchange"] | {"eol": "yes"}},
        "hostname": base | {"hostname": 5},
        "http_status": base | {"http_status": 20000},
        "tls": base | {"tls": "CN=x"},
        "shard": base | {"shard": "3 of 4"},
    }
    path = write_jsonl(tmp_path / "bad.jsonl", [record(0, "v"), *bad.values()])
    with open_store(db) as store:
        summary = ingest_files(store, [path], keep=None)
        assert (summary.new_rows, summary.bad_lines) == (1, len(bad))
        reasons = [r.reason for r in summary.files[0].stats.rejections]
    assert reasons[0] == "ip '999.1.1.1' is not an IP address"
    assert reasons[1] == "port 70000 is not a whole number from 1 to 65535"
    assert reasons[3] == "timestamp '2026-13-45T00:00:00Z' is not ISO 8601"
    assert reasons[4] == "status 'pwned' is not one of exwatch's statuses"
    assert reasons[6] == "cves: CVE-2021-26855 has verdict 'maybe'"
    assert reasons[8] == "exchange.build '15.1.x' is not a build number"
    assert all(reasons)


def test_lines_without_scan_id_never_take_over_latest(
    db: str, tmp_path: Path, record: RecordFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    census = write_jsonl(tmp_path / "census.jsonl", [record(i, "census-1") for i in range(5)])
    # Newer timestamps than the census, and no scan_id.
    stray = write_jsonl(
        tmp_path / "stray.jsonl",
        [record(i, None) | {"timestamp": "2027-01-01T00:00:00Z"} for i in range(3)],
    )
    assert main(["ingest", str(census), "--db", db]) == 0
    capsys.readouterr()
    # Defect: the id-less lines became a scan of their own that reports then took as latest.
    assert main(["ingest", str(stray), "--db", db]) == 1
    err = capsys.readouterr().err
    assert "stray.jsonl:1: rejected: no scan_id" in err
    assert "no line could be loaded" in err
    with open_store(db) as store:
        assert store.scan_ids() == ["census-1"]
    assert main(["ingest", str(stray), "--db", db, "--scan-id", "census-1"]) == 0
    with open_store(db) as store:
        assert store.scan_ids() == ["census-1"]
        assert store.result_count("census-1") == 5  # the same three targets: duplicates


def test_resumed_scan_output_counts_each_target_once(
    db: str, tmp_path: Path, record: RecordFactory
) -> None:
    # After kill -9 and --resume, a JSONL held some targets twice (scanned again later).
    first = [record(i, "s", second=1) for i in range(300)]
    again = [record(i, "s", second=9) for i in range(100, 200)]
    path = write_jsonl(tmp_path / "resumed.jsonl", [*first, *again])
    with open_store(db) as store:
        summary = ingest_files(store, [path])
        assert (summary.new_rows, summary.duplicates) == (300, 100)
        assert store.result_count("s") == 300
        # The first sighting is kept.
        stamps = {
            json.loads(r[0])["timestamp"][17:19] for r in store.query("SELECT record FROM results")
        }
        assert stamps == {"01"}


def test_cli_summary_rejections_and_exit_codes(
    db: str, tmp_path: Path, record: RecordFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [record(i, "s1") for i in range(3)]
    bad = [record(i, "s1") | {"ip": f"999.0.0.{i}"} for i in range(14)]
    a = write_jsonl(tmp_path / "a.jsonl", [*lines, *bad], tail="{trunc")
    b = write_jsonl(tmp_path / "b.jsonl", [record(i, "s2") for i in range(2)])
    assert main(["ingest", str(a), str(b), "--db", db]) == 0
    captured = capsys.readouterr()
    out = captured.out.strip()
    assert out.startswith("ingested 2 files, 20 lines, 5 new rows, 0 duplicates, 15 bad lines")
    lines_err = captured.err.splitlines()
    err_first = lines_err[0]
    assert err_first.endswith("a.jsonl:4: rejected: ip '999.0.0.0' is not an IP address")
    assert len([e for e in lines_err if ": rejected: " in e]) == 10
    assert lines_err[-1] == "... 5 more rejected lines (-v lists all)"
    c = write_jsonl(tmp_path / "c.jsonl", bad)
    assert main(["ingest", str(c), "--db", db, "-v"]) == 1
    err = capsys.readouterr().err
    assert len([e for e in err.splitlines() if ": rejected: " in e]) == 14
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["ingest", str(empty), "--db", db]) == 1
    assert main(["ingest", str(a), "--db", db]) == 0  # already ingested is not a failure
    assert "0 new rows" in capsys.readouterr().out
    assert main(["ingest", str(tmp_path / "missing.jsonl"), "--db", db]) == 2
    assert "no such file" in capsys.readouterr().err
