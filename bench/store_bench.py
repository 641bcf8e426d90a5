"""Store throughput: append rows/s (scanner path) and ingest lines/s (JSONL from shards).

Usage: .venv/bin/python bench/store_bench.py [--rows 1000000] [--batch 50000]
Writes a throw-away DuckDB file in a temporary directory; sends no network traffic.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from exwatch.store import Store, ingest_files

STATUSES = ("success", "connection-refused", "connection-timeout", "tls-error", "io-timeout")


def record(i: int, scan_id: str) -> dict[str, Any]:
    exchange = i % 5 == 0
    return {
        "schema_version": 1,
        "scan_id": scan_id,
        "ip": f"{20 + (i >> 24) % 200}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
        "port": 443,
        "hostname": None,
        "timestamp": f"2026-11-23T17:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
        "duration_ms": 12.5 + i % 100,
        "status": "success" if exchange else STATUSES[i % len(STATUSES)],
        "error": None,
        "exchange": {
            "build": "15.2.1118.7",
            "precision": "su",
            "product": "Exchange Server 2019",
            "cu": "CU12",
            "su": "Nov23SU",
            "eol": False,
            "known": True,
            "sources": ["x-owa-version", "owa-path"],
            "builds_seen": ["15.2.1118.7"],
        }
        if exchange
        else None,
        "cves": {"CVE-2021-26855": "patched", "CVE-2023-21529": "vulnerable"} if exchange else {},
        "tls": {
            "version": "TLSv1.2",
            "cipher": "ECDHE-RSA-AES256-GCM-SHA384",
            "subject_cn": "mail.example.com",
            "subject": "CN=mail.example.com",
            "issuer": "CN=R3",
            "san": ["mail.example.com"],
            "not_before": "2026-01-01",
            "not_after": "2027-01-01",
            "sha256": "ab" * 32,
        }
        if exchange
        else None,
        "ntlm": None,
        "headers": {"server": "Microsoft-IIS/10.0"},
        "http_status": 200 if exchange else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        with Store.open(db) as store:
            scan_id = store.start_scan({"bench": True}, scan_id="bench-append")
            spent = 0.0
            for start in range(0, args.rows, args.batch):
                # Building the dicts is the scanner's cost, not the store's: not timed.
                batch = [
                    record(i, scan_id) for i in range(start, min(args.rows, start + args.batch))
                ]
                t0 = time.perf_counter()
                store.append(batch)
                spent += time.perf_counter() - t0
            store.finish_scan(scan_id)
        print(
            f"append: {args.rows} rows in {spent:.2f} s = {args.rows / spent:,.0f} rows/s"
            f" (batches of {args.batch}, including json.dumps)"
        )
        jsonl = Path(tmp) / "shard.jsonl"
        with open(jsonl, "w") as handle:
            for i in range(args.rows):
                handle.write(json.dumps(record(i, "bench-ingest")) + "\n")
        size_mb = jsonl.stat().st_size / 1e6
        with Store.open(db) as store:
            t0 = time.perf_counter()
            summary = ingest_files(store, [jsonl])
            t1 = time.perf_counter()
            again = ingest_files(store, [jsonl])
            t2 = time.perf_counter()
        print(
            f"ingest: {summary.lines} lines ({size_mb:.0f} MB) in {t1 - t0:.2f} s ="
            f" {summary.lines / (t1 - t0):,.0f} lines/s; {summary.one_line()}"
        )
        print(f"re-ingest same file: {t2 - t1:.2f} s; {again.one_line()}")
        print(f"store size: {db.stat().st_size / 1e6:.0f} MB for {2 * args.rows} rows")


if __name__ == "__main__":
    main()
