"""`exwatch ingest`: idempotent JSONL loading with corrupt lines counted, never fatal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exwatch.cli import main
from exwatch.store import Store, ingest_files

RecordFactory = Callable[..., dict[str, Any]]


def write_jsonl(path: Path, records: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def test_ingest_is_idempotent_and_counts_bad_lines(tmp_path: Path, record: RecordFactory) -> None:
    good = [record(i, "shard-scan") for i in range(50)]
    shard = write_jsonl(
        tmp_path / "shard1.jsonl",
        [*good[:25], good[3]],  # a repeated line inside the file
        tail='garbage here\n\n[1, 2]\n{"ip": "8.8.8.8"}\n' + json.dumps(good[30])[:40],
    )
    db = tmp_path / "s.duckdb"
    with Store.open(db) as store:
        first = ingest_files(store, [shard])
        assert (first.lines, first.new_rows, first.duplicates, first.bad_lines) == (30, 25, 1, 4)
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


def test_records_without_scan_id_get_a_scan_named_after_the_file(
    tmp_path: Path, record: RecordFactory
) -> None:
    path = write_jsonl(tmp_path / "madrid.jsonl", [record(i, None) for i in range(5)])
    with Store.open(tmp_path / "s.duckdb") as store:
        ingest_files(store, [path])
        rows = store.connection.execute(
            "SELECT scan_id, name FROM scans WHERE origin = 'ingest'"
        ).fetchall()
        assert len(rows) == 1
        assert rows[0][0].startswith("ingest-")
        assert rows[0][1] == "madrid.jsonl"
        assert store.result_count(rows[0][0]) == 5


def test_cli_one_line_summary(
    tmp_path: Path, record: RecordFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [record(i, "s1") for i in range(3)], tail="{trunc")
    b = write_jsonl(tmp_path / "b.jsonl", [record(i, "s2") for i in range(2)])
    db = tmp_path / "cli.duckdb"
    assert main(["ingest", str(a), str(b), "--db", str(db)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("ingested 2 files, 6 lines, 5 new rows, 0 duplicates, 1 bad lines")
    assert main(["ingest", str(a), "--db", str(db)]) == 0
    assert "0 new rows" in capsys.readouterr().out
    assert main(["ingest", str(tmp_path / "missing.jsonl"), "--db", str(db)]) == 2
    assert "no such file" in capsys.readouterr().err
