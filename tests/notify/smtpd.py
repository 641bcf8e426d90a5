"""Start the test SMTP server (smtp_server.py) in its own process and read what it accepted."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.lab.running import free_port
from tests.notify.pki import TestCA

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes


@dataclass
class SmtpServer:
    port: int
    spool: Path
    security: str
    cafile: Path
    proc: subprocess.Popen[bytes]

    def received(self) -> list[Received]:
        out = []
        for path in sorted(self.spool.glob("*.eml")):
            raw = path.read_bytes()
            meta: dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            out.append(Received(message, meta["mail_from"], meta["rcpt_tos"], raw))
        return out

    def args(self) -> list[str]:
        """The `exwatch notify --send` options that reach this server."""
        return [
            "--smtp-host", "127.0.0.1", "--smtp-port", str(self.port),
            "--smtp-security", self.security, "--smtp-cafile", str(self.cafile),
        ]  # fmt: skip


@contextmanager
def smtp_server(
    folder: Path,
    ca: TestCA,
    *,
    security: str = "starttls",
    login: tuple[str, str] | None = None,
    stall_at: int = 0,
    reject_rcpt: str | None = None,
    tempfail_rcpt: str | None = None,
    spool: Path | None = None,
) -> Iterator[SmtpServer]:
    """A server process; `spool` reuses another server's folder (a restart)."""
    spool = spool or folder / f"spool-{time.monotonic_ns()}"
    (spool / "ready").unlink(missing_ok=True)
    issued = ca.issue(f"smtp-{time.monotonic_ns()}", ["localhost", "127.0.0.1"])
    port = free_port()
    cmd = [
        sys.executable, "-m", "tests.notify.smtp_server", "--port", str(port),
        "--spool", str(spool), "--security", security, "--cert", str(issued.cert),
        "--key", str(issued.key),
    ]  # fmt: skip
    if stall_at:
        cmd += ["--stall-at", str(stall_at)]
    if reject_rcpt:
        cmd += ["--reject-rcpt", reject_rcpt]
    if tempfail_rcpt:
        cmd += ["--tempfail-rcpt", tempfail_rcpt]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_TEST_")}
    if login is not None:
        env["SMTP_TEST_USER"], env["SMTP_TEST_PASSWORD"] = login
    log_path = folder / f"smtpd-{time.monotonic_ns()}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not (spool / "ready").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(f"SMTP test server did not start: {log_path.read_text()}")
            time.sleep(0.02)
        yield SmtpServer(port, spool, security, ca.cert, proc)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()
