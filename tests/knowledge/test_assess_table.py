"""`exwatch assess` as a person reads it: on a real pseudo-terminal (colour, wide table)
and through a pipe (plain text)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

EXWATCH = [sys.executable, "-m", "exwatch"]


def on_terminal(*args: str) -> str:
    main, sub = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([*EXWATCH, *args], stdout=sub, stderr=sub, env=env)
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_table_on_a_terminal_shows_why_and_how_far_behind() -> None:
    text = on_terminal("assess", "15.1.2176.9", "--only", "vulnerable")
    assert "\x1b[" in text  # coloured for a terminal
    assert "Exchange Server 2016 CU19 Mar21SU" in text
    assert "patch lag: 2 updates behind its CU" in text
    assert "CVE-2021-34473 (ProxyShell)" in text
    assert "fixed in 15.1.2176.12 (Apr21SU) [cvelist]" in text
    assert "known exploited (KEV) and vulnerable:" in text
    # --only vulnerable: the patched ProxyLogon rows are left out of the table
    assert "CVE-2021-26855" not in text


def test_piped_table_is_plain_and_lists_each_build() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    p = subprocess.run(
        [*EXWATCH, "assess", "-"],
        input="15.2.1544\n\n# comment\n14.3.513.0\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert "\x1b[" not in p.stdout
    assert "CU level only: Exchange Server 2019 CU14" in p.stdout
    assert "at most" in p.stdout  # a CU-level lag is an upper bound
    assert "Exchange Server 2010 SP3 RU32" in p.stdout
    # one line per CVE, not wrapped at 80 columns, so grep finds the whole row
    rows = [line for line in p.stdout.splitlines() if "CVE-2021-34473" in line]
    assert len(rows) == 2
    assert "not affected [cfc-proxyshell]" in rows[1]
