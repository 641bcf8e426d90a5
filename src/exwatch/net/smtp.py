"""Handing messages to an SMTP server (submission): STARTTLS or implicit TLS, optional login.

The stdlib client (smtplib) does the protocol; this module decides what its outcomes mean
for a notification run, in one place:

- `MailServerError`: the server cannot be reached or talked to (refused connection, TLS
  failure, timeout, dropped connection, 421, our sender refused).  The run stops; the
  message stays pending and the next run sends it.
- `MailAuthError`: the login was refused (a MailServerError).
- `Refused`: this message was refused: `permanent` for a 5xx answer (bad recipient; the
  message is marked failed), temporary for 4xx (it stays pending).

Certificates are verified against the server's name (system trust store or `cafile`).
Plain connections (`security="none"`) are allowed only to a relay on this machine, and never
with a login: credentials and vulnerability details do not cross a network in clear.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from exwatch.errors import ExwatchError, UsageError

Security = Literal["starttls", "tls", "none"]
SECURITIES: tuple[Security, ...] = ("starttls", "tls", "none")


class MailServerError(ExwatchError):
    """The SMTP server could not be reached or used; nothing more can be sent this run."""


class MailAuthError(MailServerError):
    """The SMTP server refused the login."""


class Refused(ExwatchError):
    """The server refused one message (`permanent` for 5xx)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.permanent = code >= 500


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: Security = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a message or log
    cafile: str | None = None
    timeout: float = 30.0
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.security not in SECURITIES:
            raise UsageError(f"SMTP security {self.security!r}: one of {', '.join(SECURITIES)}")
        if self.security == "none":
            if not _is_local(self.host):
                raise UsageError(
                    f"--smtp-security none sends in clear: allowed only to a relay on this"
                    f" machine, not {self.host}; use starttls or tls"
                )
            if self.username:
                raise UsageError("a login needs TLS: use --smtp-security starttls or tls")
        if (self.username is None) != (self.password is None):
            raise UsageError("an SMTP login needs both a user and a password")


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_login_file(path: str | Path) -> tuple[str, str]:
    """(user, password) from a file of two lines; refused when others may read it."""
    where = Path(path)
    try:
        mode = where.stat().st_mode
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read SMTP login file {where}: {exc.strerror}") from None
    if mode & 0o077:
        raise UsageError(f"SMTP login file {where} can be read by other users; chmod 600 {where}")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if len(lines) < 2 or not lines[0] or not lines[1]:
        raise UsageError(
            f"SMTP login file {where}: expected the user on line 1, the password on line 2"
        )
    return lines[0], lines[1]


def _context(cafile: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _connect_error(exc: BaseException, where: str) -> BaseException:
    """What a failed connection, TLS handshake or login means for the run."""
    if isinstance(exc, MailServerError | KeyboardInterrupt | SystemExit):
        return exc
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return MailAuthError(f"{where} refused the login: {_reply(exc.smtp_code, exc.smtp_error)}")
    if isinstance(exc, ssl.SSLError):
        return MailServerError(f"{where}: TLS failed: {exc.reason or exc}")
    if isinstance(exc, smtplib.SMTPException):
        return MailServerError(f"{where}: {exc}")
    if isinstance(exc, OSError):
        return MailServerError(f"cannot reach {where}: {exc}")
    return exc


def _reply(code: int, text: bytes | str) -> str:
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(value.split())}"[:500]


class SmtpSession:
    """One connection to the server, used for every message of a run (`with` closes it)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpSession:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        s = self.settings
        where = f"SMTP server {s.host}:{s.port}"
        smtp: smtplib.SMTP | None = None
        try:
            if s.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout,
                    context=_context(s.cafile),
                )  # fmt: skip
            else:
                smtp = smtplib.SMTP(
                    s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout
                )
            smtp.ehlo()
            if s.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise MailServerError(f"{where} does not offer STARTTLS")
                smtp.starttls(context=_context(s.cafile))
                smtp.ehlo()
            if s.username is not None and s.password is not None:
                smtp.login(s.username, s.password)
        except BaseException as exc:
            if smtp is not None:
                smtp.close()
            raise _connect_error(exc, where) from None
        self._smtp = smtp

    def send(self, sender: str, recipients: tuple[str, ...], raw: bytes) -> str:
        """Hand one message over; the server's final reply, or Refused / MailServerError."""
        smtp = self._smtp
        if smtp is None:
            raise MailServerError("not connected")
        where = f"SMTP server {self.settings.host}:{self.settings.port}"
        try:
            code, text = smtp.mail(sender)
            if code != 250:
                smtp.rset()
                raise MailServerError(f"{where} refused the sender {sender}: {_reply(code, text)}")
            refused: list[str] = []
            worst = 0
            for rcpt in recipients:
                code, text = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused.append(f"{rcpt}: {_reply(code, text)}")
                    worst = max(worst, code)
            if len(refused) == len(recipients):
                smtp.rset()
                raise Refused(worst, "; ".join(refused))
            code, text = smtp.data(raw)
            if code == 421:
                raise MailServerError(f"{where} closing: {_reply(code, text)}")
            if code != 250:
                raise Refused(code, _reply(code, text))
        except smtplib.SMTPServerDisconnected as exc:
            raise MailServerError(f"{where} dropped the connection: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:
                raise MailServerError(f"{where}: {_reply(exc.smtp_code, exc.smtp_error)}") from None
            raise Refused(exc.smtp_code, _reply(exc.smtp_code, exc.smtp_error)) from None
        except (TimeoutError, OSError) as exc:
            raise MailServerError(f"{where}: {exc}") from None
        reply = _reply(code, text)
        if refused:
            reply += f" (refused: {'; '.join(refused)})"
        return reply

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


__all__ = [
    "SECURITIES",
    "MailAuthError",
    "MailServerError",
    "Refused",
    "Security",
    "SmtpSession",
    "SmtpSettings",
    "read_login_file",
]
