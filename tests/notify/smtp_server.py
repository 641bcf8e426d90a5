"""A real SMTP server for the notify tests (aiosmtpd), run in a process of its own.

    python -m tests.notify.smtp_server --port P --spool DIR [--security starttls|tls|none]
        [--cert C --key K] [--stall-at N] [--reject-rcpt SUBSTR] [--tempfail-rcpt SUBSTR]

Login: when SMTP_TEST_USER and SMTP_TEST_PASSWORD are set, AUTH is required (and, as on a
real submission server, offered only over TLS).  Every accepted message is written to
DIR/<time>-NNNN.eml with DIR/<time>-NNNN.json (envelope sender and recipients) once the
server decides to answer 250.  `--stall-at N` makes the server hold the Nth message: it
writes DIR/stalled, waits until the client goes away, and does not accept it (the sender
never saw a 250).
DIR/ready appears when the server listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import time
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class Spool:
    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.folder = folder
        self.args = args
        self.received = 0  # DATA commands seen
        self.accepted = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.args.reject_rcpt and self.args.reject_rcpt in address:
            return "550 5.1.1 no such user here"
        if self.args.tempfail_rcpt and self.args.tempfail_rcpt in address:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received += 1
        if self.args.stall_at and self.received == self.args.stall_at:
            (self.folder / "stalled").write_text(str(self.received))
            # Polled: aiosmtpd offers no event for "the peer went away" during a hook.
            while server.transport is not None and not server.transport.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            return "451 4.3.0 the client went away"
        self.accepted += 1
        # Names sort in arrival order and never collide with an earlier server's on the spool.
        stem = self.folder / f"{time.time_ns()}-{self.accepted:04d}"
        content = envelope.original_content or b""
        stem.with_suffix(".eml").write_bytes(content)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}
        stem.with_suffix(".json").write_text(json.dumps(meta))
        return f"250 2.0.0 queued as {self.accepted:04d}"


def _authenticator(user: str, password: str) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        # handled=False: aiosmtpd then answers 535 itself (True means "I already replied").
        return AuthResult(success=ok, handled=False)

    return check


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--security", choices=("starttls", "tls", "none"), default="starttls")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--stall-at", type=int, default=0)
    parser.add_argument("--reject-rcpt")
    parser.add_argument("--tempfail-rcpt")
    args = parser.parse_args()
    args.spool.mkdir(parents=True, exist_ok=True)
    spool = Spool(args.spool, args)
    context = None
    if args.security != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    user, password = os.environ.get("SMTP_TEST_USER"), os.environ.get("SMTP_TEST_PASSWORD")
    auth: dict[str, Any] = {}
    if user and password:
        auth = {
            "authenticator": _authenticator(user, password),
            "auth_required": True,
            # aiosmtpd counts only STARTTLS as TLS; an implicit-TLS channel is TLS from the start.
            "auth_require_tls": args.security == "starttls",
        }

    def factory() -> SMTP:
        return SMTP(
            spool,
            hostname="smtp.test",
            tls_context=context if args.security == "starttls" else None,
            require_starttls=args.security == "starttls",
            **auth,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory, "127.0.0.1", args.port, ssl=context if args.security == "tls" else None
    )
    (args.spool / "ready").write_text("ready")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
