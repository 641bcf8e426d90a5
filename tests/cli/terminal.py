"""Run the real CLI on a pseudo-terminal (pexpect) and read what the screen showed."""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[2]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]")


@dataclass
class Screen:
    exit_code: int | None
    signal: int | None
    raw: str
    text: str  # escape sequences removed


def run_on_pty(
    args: list[str], *, cols: int, cwd: Path, timeout: float = 120, rows: int = 40
) -> Screen:
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "exwatch", *args],
        cwd=str(cwd),
        env=env,
        dimensions=(rows, cols),
        encoding="utf-8",
        codec_errors="replace",
        timeout=timeout,
    )
    child.expect(pexpect.EOF)
    raw = child.before or ""
    child.close()
    return Screen(child.exitstatus, child.signalstatus, raw, _ANSI.sub("", raw))


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port on 127.0.0.1 whose connections are accepted by the kernel and never answered,
    so each probe waits for its read timeout (a scan that lasts)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()
