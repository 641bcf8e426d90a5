"""Running `exwatch notify` as users do (through the CLI entry point) and reading its output."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from exwatch.cli import main

SENDER = "CERT.be <cert@cert.example>"


def notify(
    db: str, out: Path, now: str, *extra: str, constituency: Path | None = None
) -> tuple[int, dict[str, Any]]:
    """Run notify; (exit code, index.json as a dict)."""
    args = ["notify", "--db", db, "-o", str(out), "--now", now, "--from", SENDER, *extra]
    if constituency is not None:
        args += ["--constituency", str(constituency)]
    code = main(args)
    path = out / "index.json"
    index = json.loads(path.read_text("utf-8")) if path.exists() else {}
    return code, index


def messages(out: Path) -> list[EmailMessage]:
    found = []
    for path in sorted((out / "messages").glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        found.append(msg)
    return found


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def csv_of(msg: EmailMessage) -> str:
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    return str(attachment.get_content()).replace("\r\n", "\n")
