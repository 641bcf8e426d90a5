"""The JSON lines output under faults: kill -9 and resume, a full disk, a read-only place.

Issue 11 #6: after kill -9 and --resume the JSONL held some targets twice (a batch reached
the file before the store committed it).  #7: on a full disk the scan went on probing with
nothing saved, failed as `unexpected OSError` and left a partial line.  #9: `-o` to a
read-only place failed as `unexpected OSError` and left the scan row `running`.
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from tests.lab.running import free_port

EXWATCH = [sys.executable, "-m", "exwatch"]


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A small tmpfs of our own at `where` (skips where mounting is not permitted)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    where.mkdir()
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def lines_of(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "a partial last line"
    return [json.loads(line) for line in text.splitlines()]


def scans(db: Path) -> list[tuple[str, int]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT s.status, (SELECT count(*) FROM results r WHERE r.scan_id = s.scan_id)"
            " FROM scans s"
        ).fetchall()
    return [(str(a), int(b)) for a, b in rows]


def scan_cmd(out: Path, db: Path | None, cidr: str, *extra: str) -> list[str]:
    return [
        *EXWATCH,
        "scan",
        cidr,
        "--port",
        str(free_port_cached()),
        "--allow-private",
        "-o",
        str(out),
        "-q",
        *(["--db", str(db)] if db else ["--no-db"]),
        *extra,
    ]


_PORT: list[int] = []


def free_port_cached() -> int:
    # One port per test run: resume must see the same parameters each time.
    if not _PORT:
        _PORT.append(free_port())
    return _PORT[0]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_then_resume_leaves_each_target_exactly_once(tmp_path: Path, workers: int) -> None:
    out, db = tmp_path / "out.jsonl", tmp_path / "s.duckdb"
    cmd = scan_cmd(out, db, "127.0.0.0/21", "--rate", "500", "--workers", str(workers))
    rng = random.Random(workers)  # noqa: S311  (when to kill, not a secret)
    resume: list[str] = []
    kills = 0
    while kills < 3:
        proc = subprocess.Popen([*cmd, *resume], stderr=subprocess.PIPE, text=True)
        size = out.stat().st_size if out.exists() else 0
        deadline = time.monotonic() + 30
        while (not out.exists() or out.stat().st_size <= size) and time.monotonic() < deadline:
            time.sleep(0.02)  # until this run has written its first batch
        time.sleep(rng.uniform(0.0, 0.6))
        resume = ["--resume"]
        if proc.poll() is not None:
            break  # it finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        kills += 1
    else:
        final = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
    assert kills >= 2
    records = lines_of(out)
    keys = [(r["ip"], r["port"]) for r in records]
    assert len(keys) == len(set(keys)) == 2048
    assert scans(db) == [("finished", 2048)]


def test_disk_full_stops_at_the_first_failed_write_without_a_partial_line(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "small", "size=48k") as small:
        out, db = small / "out.jsonl", tmp_path / "s.duckdb"
        cmd = scan_cmd(out, db, "127.0.0.0/20", "--rate", "4000")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert p.returncode == 1, p.stderr
        assert "No space left on device" in p.stderr
        assert "--resume" in p.stderr
        assert "Traceback" not in p.stderr
        assert "unexpected" not in p.stderr
        kept = lines_of(out)
        ((status, stored),) = scans(db)
        assert status == "interrupted"
        assert stored == len(kept)  # what the file holds is what the store holds
        assert stored < 4096 // 2  # stopped early, not after probing everything
        # room again: the same command with --resume finishes, each target once
        subprocess.run(["mount", "-o", "remount,size=4m", str(small)], check=True)
        p = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        keys = [(r["ip"], r["port"]) for r in lines_of(out)]
        assert len(keys) == len(set(keys)) == 4096


def test_file_size_limit_is_a_clear_error_too(tmp_path: Path) -> None:
    """Where no tmpfs can be mounted this still runs: RLIMIT_FSIZE makes writes fail."""
    out = tmp_path / "out.jsonl"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    p = subprocess.run(
        scan_cmd(out, None, "127.0.0.0/21", "--rate", "500"),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
    )
    assert p.returncode == 1, p.stderr
    assert "File too large" in p.stderr
    assert "Traceback" not in p.stderr
    assert 0 < len(lines_of(out)) < 2048


def test_read_only_output_is_a_usage_error_and_leaves_no_running_scan(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=16k") as ro:
        db = tmp_path / "s.duckdb"
        p = subprocess.run(
            scan_cmd(ro / "out.jsonl", db, "127.0.0.1"), capture_output=True, text=True, timeout=60
        )
    assert p.returncode == 2, p.stderr
    assert "Read-only file system" in p.stderr
    assert "unexpected" not in p.stderr
    assert not db.exists() or all(status != "running" for status, _ in scans(db))


@pytest.mark.slow
def test_open_files_limit_caps_concurrency_instead_of_failing_hosts(tmp_path: Path) -> None:
    """128 silent hosts, 100 descriptors, --concurrency 200: the kernel refused sockets
    (EMFILE) and live hosts were recorded as unknown-error; now fewer are held in flight."""
    out = tmp_path / "out.jsonl"
    port = free_port()
    listeners = []
    for i in range(1, 129):  # silent hosts 127.0.2.1-128: accepted by the kernel, never answered
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((f"127.0.2.{i}", port))
        sock.listen(4)
        listeners.append(sock)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))

    try:
        p = subprocess.run(
            [
                *EXWATCH,
                "scan",
                "127.0.2.1-127.0.2.128",
                "--port",
                str(port),
                "--allow-private",
                "--plain-http",
                "--no-db",
                "-o",
                str(out),
                "--timeout",
                "0.5",
                "--concurrency",
                "200",
                "--workers",
                "1",
                "--user-agent",
                "test (https://t)",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=limit,
        )
    finally:
        for sock in listeners:
            sock.close()
    assert p.returncode == 0, p.stderr
    assert "concurrency lowered from 200" in p.stderr
    statuses = [r["status"] for r in lines_of(out)]
    assert len(statuses) == 128
    assert set(statuses) == {"io-timeout"}
