"""The DuckDB store: scans, typed results, resume queries, locking and crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exwatch.errors import StoreError
from exwatch.store import Store

PYTHON = sys.executable
RecordFactory = Callable[..., dict[str, Any]]


def test_scan_lifecycle_and_typed_columns(tmp_path: Path, record: RecordFactory) -> None:
    db = tmp_path / "s.duckdb"
    with Store.open(db) as store:
        scan_id = store.start_scan({"targets": ["8.8.0.0/16"], "seed": 7})
        assert store.latest_scan_id() == scan_id
        assert store.scan_info(scan_id)["status"] == "running"
        records = [record(i, scan_id, exchange=i % 2 == 0) for i in range(100)]
        assert store.append(records) == 100
        store.finish_scan(scan_id, "interrupted")
        assert store.find_resumable({"seed": 7, "targets": ["8.8.0.0/16"]}) == scan_id
        assert store.find_resumable({"seed": 8, "targets": ["8.8.0.0/16"]}) is None
    with Store.open(db) as store:
        info = store.scan_info(scan_id)
        assert info["status"] == "interrupted"
        assert json.loads(info["counts"]) == {"connection-refused": 50, "success": 50}
        assert store.scan_params(scan_id) == {"targets": ["8.8.0.0/16"], "seed": 7}
        row = store.connection.execute(
            "SELECT is_exchange, build, precision, eol, vulnerable, vulnerable_cves,"
            " cves['CVE-2021-26855'], sources, tls_subject_cn, ntlm_dns_domain, server,"
            " record->>'$.exchange.builds_seen[0]', year(ts)"
            " FROM results WHERE ip = '8.8.0.0'"
        ).fetchone()
        assert row is not None
        assert row[:11] == (
            True,
            "15.2.1118.7",
            "su",
            False,
            True,
            ["CVE-2023-21529"],
            "patched",
            ["x-owa-version"],
            "mail.example.com",
            "example.com",
            "Microsoft-IIS/10.0",
        )
        assert row[11] == "15.2.1118.7"
        assert row[12] == 2026
        refused = store.connection.execute(
            "SELECT is_exchange, vulnerable, build FROM results WHERE ip = '8.8.0.1'"
        ).fetchone()
        assert refused == (False, False, None)
        done = set(store.done_targets(scan_id, batch=7))
        assert len(done) == 100
        assert ("8.8.0.99", 443) in done


def test_append_counts_records_it_cannot_store(tmp_path: Path, record: RecordFactory) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        scan_id = store.start_scan({})
        no_ip = record(1, scan_id)
        del no_ip["ip"]
        bad_time = record(2, scan_id) | {"timestamp": "yesterday"}
        hostile = record(3, scan_id) | {"port": "443; DROP TABLE results", "cves": [1, 2]}
        assert store.append([record(0, scan_id), no_ip, bad_time, hostile]) == 1
        assert store.rejected_records == 3
        # A record without scan_id takes the one given.
        assert store.append([record(9, None)], scan_id=scan_id) == 1
        assert store.result_count(scan_id) == 2
        store.finish_scan(scan_id)
        counts = json.loads(store.scan_info(scan_id)["counts"])
        assert counts == {"success": 2, "rejected-records": 3}


def test_unknown_scan_and_duplicate_scan_id(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        assert store.latest_scan_id() is None
        with pytest.raises(StoreError, match="no scan"):
            store.scan_params("nope")
        store.start_scan({}, scan_id="x")
        with pytest.raises(StoreError, match="already exists"):
            store.start_scan({}, scan_id="x")
        with pytest.raises(StoreError, match="unknown scan status"):
            store.finish_scan("x", "done")


def test_not_a_store_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.duckdb"
    path.write_bytes(b"this is not a database file at all" * 200)
    with pytest.raises(StoreError, match=r"junk\.duckdb"):
        Store.open(path)


HOLDER = """
import sys, time
from exwatch.store import Store
store = Store.open(sys.argv[1])
print("ready", flush=True)
time.sleep(30)
"""


def test_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    db = tmp_path / "locked.duckdb"
    with subprocess.Popen(
        [PYTHON, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "ready"
            with pytest.raises(
                StoreError, match=f"in use by another exwatch process.*{holder.pid}"
            ):
                Store.open(db)
        finally:
            holder.kill()


WRITER = """
import sys
from exwatch.store import Store
sys.path.insert(0, sys.argv[2])
from conftest import make_record
store = Store.open(sys.argv[1])
scan_id = store.start_scan({}, scan_id="crash")
n = 0
while True:
    store.append([make_record(n + i, scan_id, second=(n // 256) % 60) for i in range(500)])
    n += 500
    print(n, flush=True)
"""


def test_kill_9_mid_write_leaves_a_consistent_store(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    committed = 0
    with subprocess.Popen(
        [PYTHON, "-c", WRITER, str(db), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None
        try:
            while committed < 3000:
                line = writer.stdout.readline()
                assert line, "writer died before writing"
                committed = int(line)
            time.sleep(0.05)  # land the kill inside a later batch
        finally:
            os.kill(writer.pid, signal.SIGKILL)
    with Store.open(db) as store:
        count = store.result_count("crash")
        assert count >= committed
        assert count % 500 == 0  # whole batches only
        assert store.scan_info("crash")["status"] == "running"
        store.append(
            [
                {
                    "scan_id": "crash",
                    "ip": "9.9.9.9",
                    "port": 443,
                    "timestamp": "2026-11-23T18:00:00Z",
                    "status": "success",
                }
            ]
        )
        store.finish_scan("crash", "interrupted")
    with Store.open(db, read_only=True) as store:
        assert store.result_count("crash") == count + 1


def test_parquet_export(tmp_path: Path, record: RecordFactory) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        scan_id = store.start_scan({})
        store.append([record(i, scan_id) for i in range(10)])
        out = tmp_path / "out.parquet"
        store.export_parquet(out, scan_id)
        n = store.connection.execute("SELECT count(*) FROM read_parquet(?)", [str(out)]).fetchone()
        assert n == (10,)
