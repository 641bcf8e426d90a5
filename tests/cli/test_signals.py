"""Stopping a scan with real signals, and an output file that is never clobbered by accident.

Issue 10 #7: `-o FILE` truncated an existing file without a word.  #11: SIGTERM exited 130
(143 is the convention); a Ctrl-C sent to the process group sometimes printed a worker's
CancelledError traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.terminal import silent_listener

EXWATCH = [sys.executable, "-m", "exwatch"]


def scan_args(port: int, out: Path, *extra: str) -> list[str]:
    return [
        *EXWATCH,
        "scan",
        "127.0.0.0/26",
        "--port",
        str(port),
        "--allow-private",
        "--plain-http",
        "--timeout",
        "4",
        "--concurrency",
        "4",
        "-o",
        str(out),
        "--status-every",
        "0.2",
        *extra,
    ]


def start(args: list[str]) -> subprocess.Popen[str]:
    # A session of its own: the process group is what a terminal's Ctrl-C reaches.
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )


def wait_until_scanning(proc: subprocess.Popen[str], out: Path) -> None:
    """Until the scan is under way (its output exists and its workers had time to start)."""
    deadline = time.monotonic() + 30
    while not out.exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_exits_143_and_keeps_what_was_found(tmp_path: Path, workers: int) -> None:
    out = tmp_path / "out.jsonl"
    with silent_listener() as port:
        proc = start(scan_args(port, out, "--no-db", "--workers", str(workers)))
        wait_until_scanning(proc, out)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert "interrupted" in err


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("presses", [1, 3])
def test_ctrl_c_to_the_process_group_prints_no_traceback(
    tmp_path: Path, workers: int, presses: int
) -> None:
    out = tmp_path / "out.jsonl"
    db = tmp_path / "s.duckdb"
    with silent_listener() as port:
        args = scan_args(port, out, "--db", str(db), "--workers", str(workers))
        proc = start(args)
        wait_until_scanning(proc, out)
        for _ in range(presses):
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.05)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert "CancelledError" not in err
        assert "resume with the same command and --resume" in err
    # and the scan can be finished (the port is closed now: fast): every address once
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    ips = [json.loads(line)["ip"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(ips) == sorted(set(ips))
    assert len(ips) == 64


def test_existing_output_is_refused_unless_force(tmp_path: Path) -> None:
    out = tmp_path / "census.jsonl"
    out.write_text('{"kept": true}\n', encoding="utf-8")
    base = [*EXWATCH, "scan", "127.0.0.1", "--port", "9", "--allow-private", "--no-db", "-q"]
    p = subprocess.run([*base, "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "--force" in p.stderr
    assert out.read_text(encoding="utf-8") == '{"kept": true}\n'
    p = subprocess.run(
        [*base, "-o", str(out), "--force"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["ip"] == "127.0.0.1"
    # devices are not files to protect
    p = subprocess.run([*base, "-o", os.devnull], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_the_target_list_is_never_the_output(tmp_path: Path) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text("127.0.0.1\n", encoding="utf-8")
    p = subprocess.run(
        [
            *EXWATCH,
            "scan",
            "-l",
            str(targets),
            "--allow-private",
            "--no-db",
            "-q",
            "-o",
            str(targets),
            "--force",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2
    assert "both the target list and the output" in p.stderr
    assert targets.read_text(encoding="utf-8") == "127.0.0.1\n"
