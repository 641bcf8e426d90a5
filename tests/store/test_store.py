"""The store on both backends: scans, typed results, resume queries, waiting, crash safety."""

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

import duckdb
import pytest

from exwatch.cli import main
from exwatch.errors import StoreError, UsageError
from exwatch.store import open_store, parse_location
from exwatch.store.duck import DuckStore

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[2]
RecordFactory = Callable[..., dict[str, Any]]


def test_scan_lifecycle_and_typed_columns(db: str, record: RecordFactory) -> None:
    with open_store(db) as store:
        scan_id = store.start_scan({"targets": ["8.8.0.0/16"], "seed": 7})
        assert store.latest_scan_id() == scan_id
        assert store.scan_info(scan_id)["status"] == "running"
        records = [record(i, scan_id, exchange=i % 2 == 0) for i in range(100)]
        assert store.append(records) == 100
        store.finish_scan(scan_id, "interrupted")
        assert store.find_resumable({"seed": 7, "targets": ["8.8.0.0/16"]}) == (scan_id, "1/1")
        assert store.find_resumable({"seed": 8, "targets": ["8.8.0.0/16"]}) is None
    with open_store(db) as store:
        info = store.scan_info(scan_id)
        assert info["status"] == "interrupted"
        assert json.loads(info["counts"]) == {"connection-refused": 50, "success": 50}
        assert store.scan_params(scan_id) == {"targets": ["8.8.0.0/16"], "seed": 7}
        row = store.query(
            "SELECT is_exchange, build, precision, eol, vulnerable, vulnerable_cves,"
            " patched_cves, cve_ids, sources, tls_subject_cn, ntlm_dns_domain, server"
            " FROM results WHERE ip = '8.8.0.0'"
        )[0]
        assert row == (
            True,
            "15.2.1118.7",
            "su",
            False,
            True,
            ["CVE-2023-21529"],
            ["CVE-2021-26855"],
            ["CVE-2021-26855", "CVE-2023-21529"],
            ["x-owa-version"],
            "mail.example.com",
            "example.com",
            "Microsoft-IIS/10.0",
        )
        text = store.scalar("SELECT record FROM results WHERE ip = '8.8.0.0'")
        assert json.loads(text)["exchange"]["builds_seen"] == ["15.2.1118.7"]
        refused = store.query(
            "SELECT is_exchange, vulnerable, build FROM results WHERE ip = '8.8.0.1'"
        )
        assert refused == [(False, False, None)]
        done = set(store.done_targets(scan_id, batch=7))
        assert len(done) == 100
        assert ("8.8.0.99", 443) in done


def test_append_counts_records_it_cannot_store(db: str, record: RecordFactory) -> None:
    with open_store(db) as store:
        scan_id = store.start_scan({})
        no_ip = record(1, scan_id)
        del no_ip["ip"]
        bad_time = record(2, scan_id) | {"timestamp": "yesterday"}
        hostile = record(3, scan_id) | {"port": "443; DROP TABLE results", "cves": [1, 2]}
        bad_ip = record(4, scan_id) | {"ip": "999.1.1.1"}
        nul = record(5, scan_id) | {"hostname": "mail\x00.example"}  # PostgreSQL text has no NUL
        assert store.append([record(0, scan_id), no_ip, bad_time, hostile, bad_ip, nul]) == 2
        assert store.rejected_records == 4
        # A record without scan_id takes the one given.
        assert store.append([record(9, None)], scan_id=scan_id) == 1
        assert store.result_count(scan_id) == 3
        store.finish_scan(scan_id)
        counts = json.loads(store.scan_info(scan_id)["counts"])
        assert counts == {"success": 3, "rejected-records": 4}
        kept = store.scalar("SELECT record FROM results WHERE ip = '8.8.0.5'")
        assert json.loads(kept)["hostname"] == "mail\x00.example"
        # A hostile server's endless header costs the typed column its tail, never the row.
        long = record(6, scan_id) | {"headers": {"server": "A" * 10_000}}
        assert store.append([long]) == 1
        server, text = store.query("SELECT server, record FROM results WHERE ip = '8.8.0.6'")[0]
        assert (len(server), len(json.loads(text)["headers"]["server"])) == (4096, 10_000)


def test_unknown_scan_and_duplicate_scan_id(db: str) -> None:
    with open_store(db) as store:
        assert store.latest_scan_id() is None
        with pytest.raises(StoreError, match="no scan"):
            store.scan_params("nope")
        assert store.start_scan({}, scan_id="x") == "x"
        with pytest.raises(StoreError, match="already scanned"):
            store.start_scan({}, scan_id="x")  # shard 1/1 of x ran already
        with pytest.raises(StoreError, match="unknown scan status"):
            store.finish_scan("x", "done")


def test_shards_of_one_census_share_a_scan(db: str, record: RecordFactory) -> None:
    with open_store(db) as store:
        for part in ("1/2", "2/2"):
            assert store.start_scan({"shard": part}, scan_id="census", part=part, targets=5) == (
                "census"
            )
        store.append([record(i, "census") | {"shard": "1/2"} for i in range(5)])
        store.finish_scan("census", part="1/2")
        assert store.scan_info("census")["status"] == "running"  # shard 2 still runs
        store.append([record(i + 5, "census") | {"shard": "2/2"} for i in range(3)])
        store.finish_scan("census", "interrupted", part="2/2")
        assert store.scan_info("census")["status"] == "interrupted"
        assert store.find_resumable({"shard": "2/2"}) == ("census", "2/2")
        parts = {p["part"]: (p["status"], p["targets"]) for p in store.scan_parts("census")}
        assert parts == {"1/2": ("finished", 5), "2/2": ("interrupted", 5)}


def test_a_store_path_must_be_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database file at all" * 200)
    with pytest.raises(UsageError, match=r"junk\.duckdb is not an exwatch store"):
        open_store(junk)
    results = tmp_path / "results.jsonl"
    results.write_text('{"ip": "8.8.8.8"}\n')
    # Defect: DuckDB opened the JSON file as a view, reported success and kept nothing.
    assert main(["report", "--db", str(results)]) == 2
    assert "exwatch ingest" in capsys.readouterr().err
    assert main(["ingest", str(results), "--db", str(tmp_path / "new.jsonl")]) == 2
    assert "not .jsonl" in capsys.readouterr().err
    assert results.read_text() == '{"ip": "8.8.8.8"}\n'
    with pytest.raises(UsageError, match="unknown store scheme"):
        parse_location("mysql://x/y")
    # SQLAlchemy's spelling: three slashes and a relative path, four for an absolute one.
    assert parse_location("duckdb:///census.duckdb").target == "census.duckdb"
    assert parse_location("duckdb:////tmp/x.duckdb").target == "/tmp/x.duckdb"
    assert parse_location("postgresql://u:secret@h/db").display == "postgresql://u@h/db"


def test_readers_refuse_to_create_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--db", str(tmp_path / "none.duckdb")]) == 2
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "none.duckdb").exists()


HOLDER = """
import sys, time
from exwatch.store import open_store
store = open_store(sys.argv[1])
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
store.close()
"""


def test_a_held_duckdb_file_is_waited_for_then_named(tmp_path: Path) -> None:
    db = tmp_path / "locked.duckdb"
    open_store(db).close()
    notes: list[str] = []
    with subprocess.Popen(
        [PYTHON, "-c", HOLDER, str(db), "1.5"], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        with open_store(db, create=False, on_wait=notes.append) as store:
            assert store.scan_ids() == []
        assert time.monotonic() - started > 0.5
    assert len(notes) == 1
    assert f"in use by process {holder.pid}; waiting up to" in notes[0]
    with subprocess.Popen(
        [PYTHON, "-c", HOLDER, str(db), "30"], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "ready"
            with pytest.raises(StoreError, match=f"stayed in use by process {holder.pid} for 1 s"):
                open_store(db, wait=1.0)
        finally:
            holder.kill()


SCANNER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from conftest import make_record
from exwatch.store import open_store
store = open_store(sys.argv[1], transient=True)
scan_id = store.start_scan({}, scan_id="long")
for n in range(40):
    store.append([make_record(n * 50 + i, scan_id) for i in range(50)])
    print(n, flush=True)
    time.sleep(0.05)
store.finish_scan(scan_id)
"""


def test_reports_read_a_duckdb_store_while_a_scan_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "busy.duckdb"
    with subprocess.Popen(
        [PYTHON, "-c", SCANNER, str(db), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    ) as scanner:
        assert scanner.stdout is not None
        assert scanner.stdout.readline()
        seen = []
        for _ in range(3):
            assert main(["report", "--db", str(db), "--format", "json", "--by", "scan"]) == 0
            rows = json.loads(capsys.readouterr().out)
            seen.append(rows[0]["targets_done"])
        assert scanner.wait(60) == 0
    assert seen[0] >= 50
    assert main(["report", "--db", str(db), "--format", "json", "--by", "scan"]) == 0
    final = json.loads(capsys.readouterr().out)[0]
    assert (final["targets_done"], final["status"]) == (2000, "finished")


WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from conftest import make_record
from exwatch.store import open_store
store = open_store(sys.argv[1])
scan_id = store.start_scan({}, scan_id="crash")
n = 0
while True:
    store.append([make_record(n + i, scan_id, second=(n // 256) % 60) for i in range(500)])
    n += 500
    print(n, flush=True)
"""


def test_kill_9_mid_write_leaves_a_consistent_store(db: str) -> None:
    committed = 0
    with subprocess.Popen(
        [PYTHON, "-c", WRITER, db, str(Path(__file__).parent)],
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
    with open_store(db) as store:
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
    with open_store(db, read_only=True) as store:
        assert store.result_count("crash") == count + 1


SHARD_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from conftest import make_record
from exwatch.store import open_store
part, first = sys.argv[3], int(sys.argv[4])
with open_store(sys.argv[1]) as store:
    store.start_scan({"part": part}, scan_id="together", part=part, targets=2000)
    for n in range(0, 2000, 250):
        store.append([make_record(first + n + i, "together") | {"shard": part}
                      for i in range(250)])
    store.finish_scan("together", part=part)
"""


def test_postgres_takes_concurrent_writers_of_one_census(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.store.backends import new_target

    db = new_target("postgresql", tmp_path, request)
    writers = [
        subprocess.Popen(
            [PYTHON, "-c", SHARD_WRITER, db, str(Path(__file__).parent), f"{k}/3", str(k * 2000)]
        )
        for k in (1, 2, 3)
    ]
    assert [w.wait(120) for w in writers] == [0, 0, 0]
    with open_store(db) as store:
        assert store.result_count("together") == 6000
        distinct = store.scalar("SELECT count(DISTINCT ip) FROM results WHERE scan_id = 'together'")
        assert distinct == 6000
        assert store.scan_info("together")["status"] == "finished"
        assert [p["part"] for p in store.scan_parts("together")] == ["1/3", "2/3", "3/3"]


# Schema 1, as exwatch 0.1 created it (results with a MAP of verdicts, no shards, no profiles).
SCHEMA_1 = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE scans (scan_id VARCHAR PRIMARY KEY, name VARCHAR, origin VARCHAR NOT NULL,
    params JSON, tool_version VARCHAR, status VARCHAR NOT NULL, started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ, counts JSON);
CREATE TABLE results (scan_id VARCHAR NOT NULL, ip VARCHAR NOT NULL, port INTEGER NOT NULL,
    hostname VARCHAR, ts TIMESTAMPTZ NOT NULL, duration_ms DOUBLE, status VARCHAR NOT NULL,
    error VARCHAR, is_exchange BOOLEAN NOT NULL, build VARCHAR, precision VARCHAR,
    product VARCHAR, cu VARCHAR, su VARCHAR, eol BOOLEAN, known BOOLEAN, sources VARCHAR[],
    cves MAP(VARCHAR, VARCHAR), vulnerable BOOLEAN NOT NULL, vulnerable_cves VARCHAR[],
    http_status INTEGER, server VARCHAR, tls_subject_cn VARCHAR, tls_issuer VARCHAR,
    tls_not_after VARCHAR, tls_sha256 VARCHAR, ntlm_dns_domain VARCHAR,
    ntlm_dns_computer VARCHAR, ntlm_netbios_domain VARCHAR, record JSON NOT NULL);
CREATE TABLE ingested_files (sha256 VARCHAR PRIMARY KEY, path VARCHAR,
    ingested_at TIMESTAMPTZ, lines BIGINT, new_rows BIGINT, duplicates BIGINT, bad_lines BIGINT);
CREATE TABLE enrichment (scan_id VARCHAR NOT NULL, ip VARCHAR NOT NULL, port INTEGER NOT NULL,
    ts TIMESTAMPTZ NOT NULL, country VARCHAR, country_source VARCHAR, asn BIGINT,
    as_name VARCHAR, asn_source VARCHAR, organisation VARCHAR, sector VARCHAR,
    matched_by VARCHAR, confidence VARCHAR, ptr VARCHAR, status VARCHAR, is_exchange BOOLEAN,
    vulnerable BOOLEAN, eol BOOLEAN, build VARCHAR, product VARCHAR, cu VARCHAR,
    vulnerable_cves VARCHAR[], cves MAP(VARCHAR, VARCHAR), evidence JSON,
    enriched_at TIMESTAMPTZ);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO scans VALUES ('old-scan', NULL, 'scan', '{"seed": 1}', '0.1.0', 'finished',
    TIMESTAMPTZ '2026-01-10 08:00:00+00', TIMESTAMPTZ '2026-01-10 09:00:00+00',
    '{"success": 2}');
INSERT INTO results VALUES
  ('old-scan', '193.190.253.144', 443, NULL, TIMESTAMPTZ '2026-01-10 08:00:00+00', 5, 'success',
   NULL, true, '15.1.2507.6', 'su', 'Exchange Server 2016', 'CU23', NULL, true, true,
   ['x-owa-version'], MAP {'CVE-2021-26855': 'vulnerable', 'CVE-2021-34473': 'patched'}, true,
   ['CVE-2021-26855'], 200, 'Microsoft-IIS/10.0', 'mail.gemeente.be', NULL, NULL, NULL, NULL,
   NULL, NULL,
   '{"ip": "193.190.253.144", "ntlm": {"netbios_computer": "EXCH01"}}'),
  ('old-scan', '145.100.1.1', 443, NULL, TIMESTAMPTZ '2026-01-10 08:00:01+00', 5, 'success',
   NULL, true, '15.1.2507.39', 'su', 'Exchange Server 2016', 'CU23', NULL, false, true,
   ['x-owa-version'], MAP {'CVE-2021-26855': 'patched'}, false, [], 200, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, '{"ip": "145.100.1.1"}');
INSERT INTO enrichment VALUES
  ('old-scan', '193.190.253.144', 443, TIMESTAMPTZ '2026-01-10 08:00:00+00', 'BE', 'iptocc old',
   NULL, NULL, 'none', 'Gemeente', 'municipality', 'cidr', 'high', NULL, 'success', true, true,
   true, '15.1.2507.6', 'Exchange Server 2016', 'CU23', ['CVE-2021-26855'],
   MAP {'CVE-2021-26855': 'vulnerable', 'CVE-2021-34473': 'patched'}, '{}',
   TIMESTAMPTZ '2026-01-11 00:00:00+00');
"""


def test_a_schema_1_store_keeps_working(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(SCHEMA_1)
    con.close()
    # Read-only cannot upgrade it, and says how.
    with pytest.raises(StoreError, match="schema 1 and is read-only"):
        open_store(db, read_only=True)
    with open_store(db) as store:
        assert store.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == "2"
        row = store.query(
            "SELECT vulnerable_cves, patched_cves, cve_ids, ntlm_netbios_computer FROM results"
            " WHERE ip = '193.190.253.144'"
        )
        assert row == [
            (["CVE-2021-26855"], ["CVE-2021-34473"], ["CVE-2021-26855", "CVE-2021-34473"], "EXCH01")
        ]
        assert store.scan_parts("old-scan")[0]["part"] == "1/1"
        assert isinstance(store, DuckStore)
    # The old enrichment row is kept; the row it lacked is enriched; the report counts both.
    assert main(["report", "--db", str(db), "--format", "json", "--by", "sector"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["municipality"]["vulnerable"] == 1
    assert sum(r["hosts"] for r in rows.values()) == 2
    assert main(["report", "--db", str(db), "--format", "json", "--by", "cve"]) == 0
    cves = {r["key"]: (r["vulnerable"], r["patched"]) for r in json.loads(capsys.readouterr().out)}
    assert cves == {"CVE-2021-26855": (1, 1), "CVE-2021-34473": (0, 1)}


def _mount_read_only(folder: Path) -> bool:
    ok = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)], capture_output=True
    )
    return ok.returncode == 0


def test_report_on_read_only_media(tmp_path: Path, record: RecordFactory, capsys) -> None:
    media = tmp_path / "media"
    media.mkdir()
    if os.geteuid() != 0 or not _mount_read_only(media):
        pytest.skip("needs root and tmpfs mounts to make read-only media")
    try:
        db = media / "census.duckdb"
        with open_store(db) as store:
            scan_id = store.start_scan({})
            store.append([record(i, scan_id) for i in range(20)])
            store.finish_scan(scan_id)
        assert main(["enrich", "--db", str(db)]) == 0
        capsys.readouterr()
        remount = ["mount", "-o", "remount,ro", str(media)]
        assert subprocess.run(remount, capture_output=True).returncode == 0
        # Defect: report opened the file for writing and failed on read-only media.
        assert main(["report", "--db", str(db), "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [(r["key"], r["hosts"], r["vulnerable"]) for r in rows] == [("US", 20, 20)]
        assert main(["export", "--db", str(db), "--format", "jsonl"]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 20
    finally:
        subprocess.run(["umount", "-l", str(media)], capture_output=True)
