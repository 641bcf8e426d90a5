"""The one place where OS, ssl and asyncio exceptions become ProbeErrors (and so a Status).

Order matters: the most specific classes come first (ssl.SSLError and ConnectionRefusedError
are OSErrors too).  `phase` says what was under way, because the same exception means
different things: a timeout while connecting is `connection-timeout`, while reading it is
`io-timeout`.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from typing import Literal

from exwatch.errors import (
    ConnectionReset,
    ConnectRefused,
    ConnectTimeout,
    ProbeError,
    ReadTimeout,
    TLSFailure,
    UnexpectedReply,
)
from exwatch.model import Status

Phase = Literal["connect", "tls", "request"]


class ConnectionClosed(ProbeError):
    """The server closed the connection before a complete response."""

    status = Status.CONNECTION_CLOSED


_ERRNO_ERRORS: dict[int, type[ProbeError]] = {
    errno.ECONNREFUSED: ConnectRefused,
    errno.ECONNRESET: ConnectionReset,
    errno.EPIPE: ConnectionReset,
    errno.ECONNABORTED: ConnectionReset,
    errno.ETIMEDOUT: ConnectTimeout,
}


def _text(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def map_exception(exc: BaseException, phase: Phase) -> ProbeError:
    """Translate `exc`, raised during `phase`, into the ProbeError whose status to record."""
    if isinstance(exc, ProbeError):
        return exc
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is the same class on 3.11+
        if phase == "connect":
            return ConnectTimeout("TCP connect timed out")
        if phase == "tls":
            return ReadTimeout("TLS handshake timed out")
        return ReadTimeout("timed out waiting for the response")
    if isinstance(exc, asyncio.IncompleteReadError):
        got = len(exc.partial)
        return ConnectionClosed(f"server closed the connection after {got} bytes of a response")
    if isinstance(exc, asyncio.LimitOverrunError):
        return UnexpectedReply("response header block exceeds the size limit")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectRefused("connection refused")
    if isinstance(exc, ssl.SSLError):
        # SSLEOFError, SSLZeroReturnError and certificate errors alike: the TLS layer failed.
        return TLSFailure(_text(exc))
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return ConnectionReset(_text(exc))
    if isinstance(exc, ConnectionAbortedError):
        # asyncio aborts a handshake that exceeds ssl_handshake_timeout this way.
        if phase == "tls":
            return ReadTimeout("TLS handshake timed out")
        return ConnectionReset(_text(exc))
    if isinstance(exc, OSError):
        cls = _ERRNO_ERRORS.get(exc.errno or 0)
        if cls is not None:
            return cls(_text(exc))
        error = ProbeError(_text(exc))  # unreachable network, no buffer space, ...
        return error
    if isinstance(exc, UnicodeError | ValueError):
        return UnexpectedReply(_text(exc))
    return ProbeError(_text(exc))


__all__ = ["ConnectionClosed", "Phase", "map_exception"]
