"""One host's HTTP(S) client: TCP connect, TLS, keep-alive requests, all under deadlines.

Every exception leaves this module as a ProbeError (via `mapper.map_exception`), so the
probe code above never sees OSError or ssl errors.  One connection is reused for all
requests while the server allows it; when the server closes it (Connection: close, a
read-until-close body, a truncated body, or an idle close between requests) the next
request opens a new one.  Certificate details come from the first TLS handshake.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from exwatch.errors import ProbeError, ReadTimeout
from exwatch.net.http import Limits, Response, head_lines, request_bytes
from exwatch.net.mapper import ConnectionClosed, Phase, map_exception
from exwatch.net.tls import client_context, session_info
from exwatch.net.wire import Wire


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed for each phase; `host` bounds everything done for one host."""

    connect: float = 5.0
    tls: float = 5.0
    read: float = 5.0
    host: float = 20.0


class _ConnectDeadline:
    """The connect phase's clock, judged by what the loop has seen rather than by the time.

    A starved loop runs due timers before it polls the sockets that became ready meanwhile
    (libuv: timers, then callbacks, then the poll), and a finished handshake reaches the
    protocol (`connection_made`) only as a callback scheduled by that poll.  So when the
    timer fires, the verdict waits three callback rounds: one poll after the timer, and
    the round that delivers what it found.  Only a connect still unanswered then times out
    (the task is cancelled, and `_connect` turns that into TimeoutError).  An address that
    never answers pays three callbacks; an answered one nothing.
    """

    __slots__ = ("_expired", "_handle", "_loop", "_task", "_wire")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float, wire: Wire) -> None:
        self._loop = loop
        self._task = asyncio.current_task(loop)
        self._wire = wire
        self._expired = False
        self._handle: asyncio.Handle | None = loop.call_later(seconds, self._check, 3)

    def _check(self, rounds: int) -> None:
        if self._handle is None or self._wire.transport is not None:
            return  # finished, or connected: the TLS phase has a clock of its own
        if rounds:
            self._handle = self._loop.call_soon(self._check, rounds - 1)
            return
        self._handle = None
        if self._task is not None:
            self._expired = True
            self._task.cancel()

    def cancelled_alone(self) -> bool:
        """Whether the task's cancellation is this deadline's alone (then it is a timeout);
        anyone else's (Ctrl-C) goes on."""
        return self._expired and self._task is not None and self._task.uncancel() == 0

    def cancel(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()


async def _connect(
    loop: asyncio.AbstractEventLoop, wire: Wire, ip: str, port: int, seconds: float
) -> asyncio.Transport:
    """TCP connect to a numeric address within `seconds` (else TimeoutError), `wire` as the
    protocol.

    The event loop makes the socket and the connect itself (uvloop: libuv's, with no
    resolver call for a numeric address): an own socket watched through `add_writer` and
    then handed over cost about nine system calls more per host (a poll handle's checks,
    its registration and removal, the transport's re-registration).
    """
    deadline = _ConnectDeadline(loop, seconds, wire)
    try:
        transport, _ = await loop.create_connection(lambda: wire, ip, port)
    except asyncio.CancelledError:
        if deadline.cancelled_alone():
            raise TimeoutError from None
        raise
    finally:
        deadline.cancel()
    return transport


class HttpClient:
    """Requests to one (ip, port) with a fixed Host header and optional SNI."""

    def __init__(
        self,
        ip: str,
        port: int,
        *,
        use_tls: bool,
        sni: str | None,
        host_header: str,
        user_agent: str,
        timeouts: Timeouts,
        limits: Limits,
    ) -> None:
        self.ip = ip
        self.port = port
        self.use_tls = use_tls
        self.sni = sni
        self.timeouts = timeouts
        self.limits = limits
        self.tls: dict[str, Any] | None = None
        self.connections = 0
        self.requests = 0
        self._head = head_lines(host_header, user_agent)
        self._wire: Wire | None = None
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + timeouts.host

    def extend_deadline(self, seconds: float) -> None:
        """Give the host `seconds` more from now (the opt-in checks' own time budget)."""
        self._deadline = max(self._deadline, self._loop.time() + seconds)

    def _budget(self, phase_limit: float) -> float:
        left = self._deadline - self._loop.time()
        if left <= 0:
            raise ReadTimeout("per-host deadline reached")
        return min(phase_limit, left)

    async def connect(self) -> None:
        """Open a connection (TCP, then TLS when configured); record the certificate once."""
        phase: Phase = "connect"
        loop = self._loop
        wire = Wire(loop, self.limits.max_header_bytes)
        transport: asyncio.Transport | None = None
        try:
            budget = self._budget(self.timeouts.connect)
            transport = await _connect(loop, wire, self.ip, self.port, budget)
            if self.use_tls:
                phase = "tls"
                wire.before_tls()
                # The transport's own handshake timeout bounds this phase (one timer per
                # host fewer): it aborts with ConnectionAbortedError, which the mapper
                # reports as a TLS handshake timeout.
                tls = await loop.start_tls(
                    transport,
                    wire,
                    client_context(),
                    server_hostname=self.sni or "",
                    ssl_handshake_timeout=self._budget(self.timeouts.tls),
                    ssl_shutdown_timeout=1.0,
                )
                if tls is None:  # the connection was lost as the handshake ended
                    raise ConnectionResetError("connection lost during the TLS handshake")
                transport = tls
                wire.connection_made(transport)
        except BaseException as exc:
            if transport is not None:
                transport.abort()
            if isinstance(exc, Exception):
                raise map_exception(exc, phase) from exc
            raise
        self._wire = wire
        self.connections += 1
        if self.use_tls and self.tls is None:
            self.tls = session_info(wire.get_extra_info("ssl_object"))

    async def request(
        self, method: str, target: str, extra_headers: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        """Send one request and read its response, reconnecting once if an idle
        keep-alive connection turns out to be closed."""
        extra = (
            b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in extra_headers)
            if extra_headers
            else b""
        )
        try:
            data = request_bytes(method, target, self._head, extra)
        except ValueError as exc:
            raise map_exception(exc, "request") from exc
        reused = self._wire is not None
        if self._wire is not None and self._wire.at_eof():
            self.close()
            reused = False
        if self._wire is None:
            await self.connect()
        try:
            return await self._exchange(data, method)
        except (ConnectionClosed, ProbeError) as exc:
            stale = (
                reused
                and isinstance(exc.__cause__, asyncio.IncompleteReadError | ConnectionError)
                and not getattr(exc.__cause__, "partial", b"")
            )
            if not stale:
                raise
        # The server closed the idle connection before reading our request: try once more.
        await self.connect()
        return await self._exchange(data, method)

    async def _exchange(self, data: bytes, method: str) -> Response:
        wire = self._wire
        if wire is None:
            raise ConnectionClosed("no open connection")
        try:
            wire.start_deadline(self._budget(self.timeouts.read))
            try:
                wire.write(data)
                response = await wire.response(method, self.limits)
            finally:
                wire.stop_deadline()
        except Exception as exc:
            self.abort()
            raise map_exception(exc, "request") from exc
        self.requests += 1
        if not response.keep_alive:
            self.close()
        return response

    def close(self) -> None:
        """Drop the connection once its responses are read whole.

        No TLS close_notify: uvloop would then wait for the server's own alert (a timer,
        a read and a decryption per host, about 7 % of a first-stage host's CPU, and up to
        `ssl_shutdown_timeout` of a slot when a server never answers it).  Nothing is
        unread, so the server sees an ordinary FIN, as from most scanners and browsers
        that drop idle connections.
        """
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once (after errors: a hostile peer gets no more time)."""
        wire, self._wire = self._wire, None
        if wire is not None and wire.transport is not None:
            wire.transport.abort()


__all__ = ["HttpClient", "Timeouts"]
