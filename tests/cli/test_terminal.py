"""Every command works on a real terminal, and without one a scan still says how it is doing.

Issue 10 #1: `exwatch scan` crashed in every interactive terminal (the progress column
formatted `task.total` while it was None); no test ran the CLI on a pseudo-terminal.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.terminal import REPO, run_on_pty, silent_listener
from tests.lab.running import free_port

EXWATCH = [sys.executable, "-m", "exwatch"]
WIDTHS = [80, 200]


def assert_clean(text: str) -> None:
    assert "Traceback" not in text
    assert "unexpected" not in text
    assert "Error" not in text


def assert_progress_fields(text: str) -> None:
    assert "/s" in text  # rate
    assert "exchange" in text  # found
    assert "errors" in text
    assert "ETA" in text


@pytest.mark.parametrize("cols", WIDTHS)
def test_scan_on_a_terminal(tmp_path: Path, cols: int) -> None:
    with silent_listener() as port:
        screen = run_on_pty(
            [
                "scan",
                "127.0.0.1/30",
                "--port",
                str(port),
                "--allow-private",
                "--no-db",
                "-o",
                "x.jsonl",
                "--timeout",
                "1",
                "--plain-http",
            ],
            cols=cols,
            cwd=tmp_path,
        )
    assert screen.exit_code == 0, screen.text
    assert_clean(screen.text)
    assert_progress_fields(screen.text)
    assert "4/4" in screen.text
    assert "finished" in screen.text
    assert (tmp_path / "x.jsonl").read_text(encoding="utf-8").count("\n") == 4


@pytest.mark.slow
@pytest.mark.parametrize("cols", WIDTHS)
def test_demo_on_a_terminal(tmp_path: Path, cols: int) -> None:
    screen = run_on_pty(
        ["demo", "--hosts", "12", "--dir", "d", "--port", str(free_port())],
        cols=cols,
        cwd=tmp_path,
        timeout=240,
    )
    assert screen.exit_code == 0, screen.text
    assert_clean(screen.text)
    assert_progress_fields(screen.text)
    assert "Exchange servers found" in screen.text


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with Exchange hosts in it: the demo's, made without a terminal."""
    where = tmp_path_factory.mktemp("demo")
    p = subprocess.run(
        [*EXWATCH, "demo", "--hosts", "12", "--dir", str(where), "--port", str(free_port()), "-q"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert p.returncode == 0, p.stderr + p.stdout
    return where / "demo.duckdb"


@pytest.mark.parametrize("cols", WIDTHS)
def test_report_on_a_terminal(tmp_path: Path, cols: int, demo_store: Path) -> None:
    for by in ("version", "host"):
        screen = run_on_pty(
            ["report", "--db", str(demo_store), "--by", by], cols=cols, cwd=tmp_path
        )
        assert screen.exit_code == 0, screen.text
        assert_clean(screen.text)
        assert "15." in screen.text  # builds are shown


@pytest.mark.parametrize("cols", WIDTHS)
def test_hostcheck_on_a_terminal(tmp_path: Path, cols: int) -> None:
    copy = REPO / "tests" / "hostcheck" / "fixtures" / "kape"
    screen = run_on_pty(["hostcheck", str(copy)], cols=cols, cwd=tmp_path)
    assert screen.exit_code == 1, screen.text  # the fixture holds findings
    assert "Traceback" not in screen.text
    assert "unexpected" not in screen.text


def _scan_without_terminal(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    with silent_listener() as port:
        return subprocess.run(
            [
                *EXWATCH,
                "scan",
                "127.0.0.1/31",
                "--port",
                str(port),
                "--allow-private",
                "--no-db",
                "-o",
                str(tmp_path / f"out{len(extra)}.jsonl"),
                "--timeout",
                "1.5",
                "--plain-http",
                "--status-every",
                "0.3",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )


def test_without_a_terminal_status_lines_go_to_stderr(tmp_path: Path) -> None:
    p = _scan_without_terminal(tmp_path)
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.startswith("scan: ")]
    assert len(lines) >= 2, p.stderr
    for field in ("/2 ", "/s", "exchange", "errors", "ETA"):
        assert field in lines[0]
    assert p.stdout == ""


def test_quiet_silences_the_status_lines(tmp_path: Path) -> None:
    p = _scan_without_terminal(tmp_path, "-q")
    assert p.returncode == 0, p.stderr
    assert not [line for line in p.stderr.splitlines() if line.startswith("scan: ")]


def test_status_line_before_and_after_the_total_is_known() -> None:
    from exwatch.cli.progress import status_line
    from exwatch.scan.runner import Tally

    tally = Tally(done=1_500, exchange=7, errors=3)
    unknown = status_line(tally, None)  # stdin lists: no total
    assert unknown.startswith("scan: 1,500 done, ")
    assert "ETA --:--" in unknown
    known = status_line(tally, 3_000_000)
    assert known.startswith("scan: 1,500/3,000,000 (0.1%) done, ")
    assert "exchange 7, errors 3" in known
    assert "\n" not in known
