"""One connection's incoming bytes, read the way `read_response` reads: exactly n bytes, up
to a separator, or what is there, each bounded, with one deadline per request.

asyncio's streams do the same with three objects per connection (protocol, reader, writer),
a future per connection for `wait_closed`, and `asyncio.timeout` (a task cancellation) per
request; this protocol is all three at about half the Python work per request.  What the
reads raise is what asyncio's StreamReader raises (IncompleteReadError, LimitOverrunError,
the connection's own error), so `mapper.map_exception` gives the same statuses.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from exwatch.net.http import Limits, Response, parse_whole, read_response

# Reading pauses while this much is buffered and unread (a server flooding the connection
# cannot grow it further; the largest read asked for is a body cap, 256 KiB by default).
_HIGH_WATER = 1024 * 1024


class Wire(asyncio.Protocol):
    """The protocol of one scanner connection and the reader of its bytes."""

    __slots__ = (
        "_buffer",
        "_deadline",
        "_eof",
        "_error",
        "_limit",
        "_loop",
        "_paused",
        "_timer",
        "_waiter",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit  # separator searches, as StreamReader's `limit`
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._paused = False
        self.transport: asyncio.Transport | None = None

    # -- protocol callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # nothing more to send either: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._eof = True
        if exc is not None and self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the request's deadline ------------------------------------------------------------

    def start_deadline(self, seconds: float) -> None:
        """Reads fail with TimeoutError `seconds` from now (until `stop_deadline`).

        One timer serves a connection's requests: a later deadline leaves it in place and
        it re-arms itself when it fires early, instead of a new timer and a cancel per
        request."""
        loop = self._loop
        self._deadline = loop.time() + seconds
        if self._timer is None or self._timer.when() > self._deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(self._deadline, self._expire)

    def stop_deadline(self) -> None:
        self._deadline = None

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _expire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return  # no request waiting: nothing to time out
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._expire)
            return
        if self._error is None:
            self._error = TimeoutError()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(TimeoutError())

    def before_tls(self) -> None:
        """Raise what the TLS handshake would meet on a connection where the server spoke
        or hung up first: what it sent would be the start of the ServerHello (an SSL
        error: "wrong version number"), and an early close a reset mid-handshake."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            raise ssl.SSLError(
                f"the server spoke first ({len(self._buffer)} bytes before the TLS handshake)"
            )
        if self._eof:
            raise ConnectionResetError("the server closed the connection before the TLS handshake")

    # -- writing and state -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    def get_extra_info(self, name: str) -> Any:
        return None if self.transport is None else self.transport.get_extra_info(name)

    # -- reads (StreamReader's semantics) ----------------------------------------------------

    async def _more(self) -> None:
        """Wait for data, EOF, an error or the deadline."""
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        waiter = self._loop.create_future()
        self._waiter = waiter
        await waiter

    def _taken(self, n: int) -> bytes:
        buffer = self._buffer
        if n >= len(buffer):  # all of it (a body read whole): one copy, not two
            data = bytes(buffer)
            buffer.clear()
            return data
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    async def readexactly(self, n: int) -> bytes:
        while True:
            if self._error is not None:
                raise self._error
            if len(self._buffer) >= n:
                return self._taken(n)
            if self._eof:
                partial = self._taken(len(self._buffer))
                raise asyncio.IncompleteReadError(partial, n)
            await self._more()

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        size = len(separator)
        offset = 0
        while True:
            if self._error is not None:
                raise self._error
            buffer = self._buffer
            found = buffer.find(separator, offset)
            if found >= 0:
                if found > self._limit:
                    raise asyncio.LimitOverrunError(
                        "Separator is found, but chunk is longer than limit", found
                    )
                return self._taken(found + size)
            offset = max(0, len(buffer) + 1 - size)
            if offset > self._limit:
                raise asyncio.LimitOverrunError(
                    "Separator is not found, and chunk exceed the limit", offset
                )
            if self._eof:
                raise asyncio.IncompleteReadError(self._taken(len(buffer)), None)
            await self._more()

    async def response(self, method: str, limits: Limits) -> Response:
        """One response: parsed at once when it is all there when the first bytes come
        (`parse_whole`: most responses arrive in one TLS record), else read piece by piece
        by `read_response`, which also judges whatever else the server sent."""
        if not self._buffer and not self._eof and self._error is None:
            await self._more()
        if self._error is None:
            whole = parse_whole(self._buffer, method, limits, self._limit)
            if whole is not None:
                response, size = whole
                del self._buffer[:size]
                return response
        return await read_response(self, method, limits)

    async def read(self, n: int) -> bytes:
        while True:
            if self._error is not None:
                raise self._error
            if self._buffer:
                return self._taken(n)
            if self._eof:
                return b""
            await self._more()


__all__ = ["Wire"]
