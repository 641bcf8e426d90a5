"""Target lists are streamed: order, shards, screening, bad lines, identity instead of lines.

Issue 11 #8: 10^7 targets on stdin took 128 s and 5.2 GB before the first probe, and the list
was stored in the scan's parameters (17.7 MB per million) and reloaded on resume.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from itertools import islice
from pathlib import Path

import duckdb

from exwatch.scan.exclusions import Exclusions
from exwatch.scan.job import ScanJob
from exwatch.scan.stream import ListSource, TargetStream
from exwatch.scan.targets import TargetSpace
from tests.lab.running import free_port

EXWATCH = [sys.executable, "-m", "exwatch"]


def stream_of(path: Path, **kw: object) -> TargetStream:
    return TargetStream(
        (ListSource(str(path)),),
        tuple(kw.get("ports", (443,))),  # type: ignore[arg-type]
        bool(kw.get("allow_private", False)),
        kw.get("exclusions", Exclusions.none()),  # type: ignore[arg-type]
    )


def test_each_line_becomes_targets_or_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(
        "# header\n8.8.8.8\n8.8.4.0/30\nmail.example.org\n9.9.9.9:8443\n10.0.0.300\n\n2A00::1\n",
        encoding="utf-8",
    )
    got = list(stream_of(path).iter(1))
    good = sorted((t.ip or t.hostname or "", t.port) for t in got if t.error is None)
    assert good == sorted(
        [
            ("8.8.8.8", 443),
            ("8.8.4.0", 443),
            ("8.8.4.1", 443),
            ("8.8.4.2", 443),
            ("8.8.4.3", 443),
            ("mail.example.org", 443),
            ("9.9.9.9", 8443),
            ("2a00::1", 443),
        ]
    )
    (bad,) = [t for t in got if t.error is not None]
    assert bad.error is not None
    assert bad.error.startswith(f"{path}:6: ")
    assert all(t.position == -1 for t in got)


def test_listed_addresses_are_screened_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("10.0.0.1\n::ffff:127.0.0.1\n8.8.8.8\n", encoding="utf-8")
    space = TargetSpace.from_specs([], exclusions=Exclusions.parse(["8.8.8.0/24"]))
    stream = TargetStream((ListSource(str(path)),), (443,), False, space.exclusions)
    reasons = {t.ip: space.screen(t.ip or "", None) for t in stream.iter(1)}
    assert reasons == {"10.0.0.1": "reserved", "::ffff:7f00:1": "reserved", "8.8.8.8": "excluded"}


def test_shards_are_disjoint_and_cover_the_list(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("".join(f"8.{i // 256}.{i % 256}.1\n" for i in range(3000)), encoding="utf-8")
    stream = stream_of(path)
    shards = [[t.ip or "" for t in stream.iter(5, (i, 4))] for i in range(4)]
    flat = [ip for s in shards for ip in s]
    assert len(flat) == len(set(flat)) == 3000
    whole = [t.ip or "" for t in stream.iter(5)]
    assert sorted(whole) == sorted(flat)
    assert whole != sorted(whole, key=lambda ip: tuple(map(int, (ip or "").split("."))))


def test_a_long_list_streams_in_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text(
        "".join(f"8.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n" for i in range(400_000)),
        encoding="utf-8",
    )
    stream = stream_of(path)
    tracemalloc.start()
    try:
        t0 = time.monotonic()
        first = next(stream.iter(1))
        first_after = time.monotonic() - t0
        n = sum(1 for _ in islice(stream.iter(1), 60_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.ip is not None
    assert first_after < 2.0  # one shuffle window, not the whole file
    assert n == 60_000
    assert peak < 30 * 1024 * 1024  # the window, not the list (4e5 targets held: ~100 MB)


def test_scan_parameters_keep_the_lists_identity_not_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("".join(f"8.8.{i // 256}.{i % 256}\n" for i in range(20_000)), "utf-8")
    params = ScanJob(specs=[], lists=[str(path)]).params()
    (ident,) = params["lists"]
    assert ident["path"] == str(path.resolve())
    assert ident["bytes"] == path.stat().st_size
    assert len(ident["sha256"]) == 64
    assert len(json.dumps(params)) < 1000
    assert "specs" in params
    assert "lists" not in ScanJob(specs=["8.8.8.8"]).params()  # old scans resume as before


def test_cli_streams_stdin_first_probe_at_once_memory_flat(tmp_path: Path) -> None:
    """A million listed targets on stdin: probing starts within seconds, RSS stays small."""
    db = tmp_path / "s.duckdb"
    lines = "".join(f"127.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n" for i in range(1_000_000))
    proc = subprocess.Popen(
        [
            *EXWATCH,
            "scan",
            "-",
            "--port",
            str(free_port()),
            "--allow-private",
            "--db",
            str(db),
            "--status-every",
            "0.1",
            "--workers",
            "1",
            "--user-agent",
            "test (https://cert.test)",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stderr is not None
    stdin = proc.stdin

    def feed() -> None:
        # The scan reads stdin as it goes: a producer that is faster blocks, as `cat` would.
        with contextlib.suppress(BrokenPipeError, ValueError):
            stdin.write(lines)

    t0 = time.monotonic()
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    first = None
    deadline = t0 + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith("scan: ") and not line.startswith("scan: 0 "):
            first = time.monotonic() - t0
            break
    assert first is not None
    rss_kib = 0
    with open(f"/proc/{proc.pid}/status", encoding="ascii") as status:
        for row in status:
            if row.startswith("VmRSS:"):
                rss_kib = int(row.split()[1])
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    feeder.join(timeout=30)
    with contextlib.suppress(BrokenPipeError):
        stdin.close()
    proc.stderr.close()
    assert proc.returncode == 143
    assert first < 5.0  # held in memory first, a million lines took ~13 s
    assert rss_kib < 250 * 1024  # held: ~520 MB for a million
    with duckdb.connect(str(db), read_only=True) as con:
        (params,) = con.execute("SELECT params FROM scans").fetchone() or ("",)
    assert len(params) < 1000
    assert json.loads(params)["lists"] == [{"path": "<stdin>"}]


def test_a_pipe_that_pauses_never_blocks_the_scan(tmp_path: Path) -> None:
    """`producer | exwatch scan -`: while the producer is silent, the loop keeps running
    (status lines go on, SIGTERM is handled at once)."""
    proc = subprocess.Popen(
        [
            *EXWATCH,
            "scan",
            "-",
            "--port",
            str(free_port()),
            "--allow-private",
            "--no-db",
            "-o",
            str(tmp_path / "o.jsonl"),
            "--status-every",
            "0.1",
            "--user-agent",
            "test (https://cert.test)",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stderr is not None
    proc.stdin.write("127.0.0.1\n127.0.0.2\n")
    proc.stdin.flush()  # and then nothing more, the pipe left open
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while len(lines) < 8 and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith("scan: "):
            lines.append(line)
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    stopped_after = time.monotonic() - t0
    proc.stdin.close()
    proc.stderr.close()
    assert len(lines) == 8  # the loop kept printing while stdin was silent
    assert proc.returncode == 143
    assert stopped_after < 10
    got = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text("utf-8").splitlines()]
    assert sorted(r["ip"] for r in got) == ["127.0.0.1", "127.0.0.2"]


def test_an_endless_line_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    with open(path, "w", encoding="utf-8") as out:
        out.write("8.8.8.8\n")
        for _ in range(64):  # 64 MiB without a newline
            out.write("a" * (1 << 20))
        out.write("\n8.8.4.4\n")
    tracemalloc.start()
    try:
        got = list(stream_of(path).iter(1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sorted(t.ip for t in got if t.ip) == ["8.8.4.4", "8.8.8.8"]
    (bad,) = [t for t in got if t.error]
    assert bad.error is not None
    assert f"{path}:2: " in bad.error
    assert peak < 8 * 1024 * 1024
