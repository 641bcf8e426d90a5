"""The scanner's own byte reader and header parser read what asyncio's streams and the plain
per-line reading read: the same responses, the same errors, for any bytes a server sends.

`net/wire.Wire` replaced asyncio's StreamReader/StreamWriter and `net/http._parse_head`
decodes a header block once instead of twice per line, both for speed (performance.md,
"exwatch's own cost"); these tests hold them to the behaviour they replaced.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from exwatch.net.http import Limits, _parse_head, read_response
from exwatch.net.wire import Wire


def reference_head(block: bytes, limits: Limits) -> tuple[str, int, str, list[tuple[str, str]]]:
    """The per-line bytes reading `_parse_head` replaced (status line checks left out: the
    same code reads it in both)."""
    lines = block.split(b"\r\n")
    if len(lines) - 1 > limits.max_headers:
        raise ValueError("too many")
    parts = lines[0].split(b" ", 2)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in b" \t" and headers:
            key, previous = headers[-1]
            headers[-1] = (key, previous + " " + line.strip().decode("latin-1"))
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        headers.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    return parts[0].decode("latin-1"), int(parts[1]), reason, headers


# Header lines from bytes that matter: separators, every kind of whitespace bytes.strip()
# and str.strip() disagree on, latin-1 letters whose case only str.lower() changes.
_LINE = st.lists(
    st.sampled_from(
        [
            b"A",
            b"b",
            b"-",
            b":",
            b" ",
            b"\t",
            b"\x0b",
            b"\x0c",
            b"\x1c",
            b"\x85",
            b"\xa0",
            b"\xc0",
            b"\xe9",
            b"\x00",
            b"\r",
            b"\n",
            b"X-Owa-Version",
            b"15.2.1544.4",
        ]
    ),
    max_size=12,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(lines=st.lists(_LINE, max_size=8), reason=_LINE)
def test_header_block_read_as_the_per_line_bytes_reading(lines: list[bytes], reason: bytes) -> None:
    block = b"\r\n".join([b"HTTP/1.1 200 " + reason.replace(b"\r\n", b""), *lines])
    limits = Limits(max_headers=6)
    try:
        expected = reference_head(block, limits)
    except ValueError:
        expected = None
    try:
        got = _parse_head(block, limits)
    except Exception:
        got = None
    if expected is None or got is None:
        # Both refuse (too many lines), or the status line itself is odd for both.
        assert (expected is None) == (got is None) or b"\r\n" in reason
        return
    assert got == expected


async def _read(chunks: list[bytes], eof: bool | str, make: str, limit: int) -> object:
    """What one response read gives: `stream` (asyncio's StreamReader and `read_response`),
    `wire` (the Wire and `read_response`), `whole` (the Wire's own `response`, which parses
    a response that is all there at once), with what is left unread after it.  `eof`: the
    server closes after the chunks (True), resets the connection ("reset") or stays."""
    loop = asyncio.get_running_loop()
    limits = Limits(max_header_bytes=limit, max_body_bytes=64)
    if make == "stream":
        reader: object = asyncio.StreamReader(limit=limit)
        feed, end = reader.feed_data, reader.feed_eof  # type: ignore[attr-defined]
    else:
        wire = Wire(loop, limit)
        reader, feed, end = wire, wire.data_received, wire.eof_received
    if eof == "reset":
        reset = ConnectionResetError("reset by peer")
        end = (
            (lambda: reader.set_exception(reset))  # type: ignore[attr-defined]
            if make == "stream"
            else (lambda: wire.connection_lost(reset))
        )

    async def deliver() -> None:
        for chunk in chunks:
            await asyncio.sleep(0)
            feed(chunk)
        if eof:
            end()

    if make == "whole":
        read = asyncio.create_task(wire.response("GET", limits))
    else:
        read = asyncio.create_task(read_response(reader, "GET", limits))  # type: ignore[arg-type]
    await deliver()
    for _ in range(10):  # let the reader take what arrived (no I/O: a few loop turns)
        await asyncio.sleep(0)
    if not read.done():
        read.cancel()
        return "still waiting"
    try:
        r = read.result()
    except Exception as exc:  # the kind of error and what came with it, as the mapper sees it
        return type(exc).__name__, getattr(exc, "partial", None), str(exc)
    left = bytes(reader._buffer)  # type: ignore[attr-defined]
    return (r.version, r.status, r.reason, r.headers, r.body, r.truncated, r.keep_alive, left)


RESPONSES = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
    b"HTTP/1.1 302 Found\r\nLocation: /owa/\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 300 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Cut: no end of head",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"",
    # what the Wire's whole-response parse takes, or leaves to read_response
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100,  # over the cap
    b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + b"y" * 64,  # at the cap
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 101 Switching\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 200 OK\r\n"
    b"Content-Length: 3\r\n\r\nyes",  # the next response already there
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSSH-2.0",  # then garbage
    b"HTTP/1.1 0200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/2 200\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Long: " + b"a" * 217 + b"\r\n\r\n",  # head at limit
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Long: " + b"a" * 218 + b"\r\n\r\n",  # one over
    b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n" + b"z" * 65,  # one over the cap
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",  # chunked wins
)
_RESPONSES = st.sampled_from(RESPONSES)


@settings(max_examples=300, deadline=None)
@given(response=_RESPONSES, cuts=st.lists(st.integers(0, 400), max_size=4), eof=st.booleans())
def test_wire_reads_what_the_stream_reader_reads(
    response: bytes, cuts: list[int], eof: bool
) -> None:
    """Any split of any response into arrivals, with or without EOF: the same response (and
    the same bytes left for the next one) or the same error class (IncompleteReadError,
    LimitOverrunError, UnexpectedReply, timeout), read by StreamReader, by the Wire, or by
    the Wire's own whole-response parse."""
    points = sorted({min(c, len(response)) for c in cuts})
    chunks = [response[a:b] for a, b in zip([0, *points], [*points, len(response)], strict=True)]
    chunks = [c for c in chunks if c]

    async def each() -> tuple[object, object, object]:
        return (
            await _read(chunks, eof, "stream", 256),
            await _read(chunks, eof, "wire", 256),
            await _read(chunks, eof, "whole", 256),
        )

    stream, wire, whole = asyncio.run(each())
    assert wire == stream
    assert whole == stream


def _splits(response: bytes) -> list[list[bytes]]:
    """The response whole, and cut in two where the whole-response parse decides something:
    everywhere in a short response, around the status line, the head's end and the body's
    end in a long one."""
    head = response.find(b"\r\n\r\n")
    points = (
        range(1, len(response))
        if len(response) < 90
        else {1, 4, 5, 6, *range(head - 2, head + 6), len(response) - 2, len(response) - 1}
    )
    return [[response]] + [
        [response[:p], response[p:]] for p in sorted(points) if 0 < p < len(response)
    ]


def test_whole_response_parse_reads_what_the_piecewise_reading_reads() -> None:
    """Every response above, whole or cut in two at each point that matters, then left
    open, closed or reset: the Wire's `response` gives what `read_response` over the Wire
    gives (the reading it shortens), and leaves the same bytes for the next response."""

    async def each() -> list[tuple[object, object, bytes, tuple[int, bool | str]]]:
        differ = []
        for response in RESPONSES:
            for chunks in _splits(response):
                for end in (False, True, "reset"):
                    wire = await _read(chunks, end, "wire", 256)
                    whole = await _read(chunks, end, "whole", 256)
                    if whole != wire:
                        differ.append((wire, whole, response, (len(chunks[0]), end)))
        return differ

    assert asyncio.run(each()) == []


def test_wire_deadline_times_out_a_silent_server_and_rearms_for_the_next_request() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        wire = Wire(loop, 1024)
        seen: list[str] = []
        wire.start_deadline(0.05)
        wire.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
        response = await read_response(wire, "GET", Limits())
        seen.append(str(response.status))
        wire.stop_deadline()
        await asyncio.sleep(0.1)  # the first timer fires with no request waiting: nothing
        wire.start_deadline(0.05)
        try:
            await read_response(wire, "GET", Limits())
        except TimeoutError:
            seen.append("timeout")
        return seen

    assert asyncio.run(main()) == ["204", "timeout"]


def test_before_tls_refuses_a_server_that_spoke_or_hung_up_first() -> None:
    """The TLS handshake starts on a connection the wire has read from since the connect:
    bytes from the server before our ClientHello are what the handshake would have taken
    for a ServerHello (an SSL error, `tls-error`), an early close a reset
    (`connection-reset`), a lost connection its own error; a quiet one goes ahead."""
    import ssl

    import pytest

    from exwatch.model import Status
    from exwatch.net.mapper import map_exception

    loop = asyncio.new_event_loop()
    try:
        Wire(loop, 1024).before_tls()  # nothing heard: no error

        spoke = Wire(loop, 1024)
        spoke.data_received(b"220 mail.example ESMTP\r\n")
        with pytest.raises(ssl.SSLError, match="24 bytes") as raised:
            spoke.before_tls()
        assert map_exception(raised.value, "tls").status is Status.TLS_ERROR

        hung_up = Wire(loop, 1024)
        hung_up.eof_received()
        with pytest.raises(ConnectionResetError) as reset:
            hung_up.before_tls()
        assert map_exception(reset.value, "tls").status is Status.CONNECTION_RESET

        lost = Wire(loop, 1024)
        lost.connection_lost(ConnectionAbortedError("gone"))
        with pytest.raises(ConnectionAbortedError):
            lost.before_tls()
    finally:
        loop.close()
