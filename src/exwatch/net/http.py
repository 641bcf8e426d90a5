"""A minimal HTTP/1.1 message layer: format a request, read one response from a byte source
(the scanner's `wire.Wire`, or an asyncio StreamReader).

Hand-written because it is the scanner's hot path (aiohttp and httpx cost 1.5-4x the CPU
per fingerprint, see performance.md) and because every read must be bounded against
hostile servers: the header block, the number of header lines and the body (Content-Length,
chunked or read-until-close) all have caps.  A body over the cap is truncated, not an
error; the connection is then not reused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from exwatch.errors import UnexpectedReply


class ByteSource(Protocol):
    """What a response is read from: asyncio's StreamReader, or the scanner's `wire.Wire`."""

    async def readexactly(self, n: int) -> bytes: ...
    async def readuntil(self, separator: bytes = ...) -> bytes: ...
    async def read(self, n: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what one response may make the scanner read."""

    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_body_bytes: int = 256 * 1024


class Response:
    """One HTTP response: status, header lines (lower-case names, in order), bounded body."""

    __slots__ = ("body", "headers", "keep_alive", "reason", "status", "truncated", "version")

    def __init__(
        self,
        version: str,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        truncated: bool,
        keep_alive: bool,
    ) -> None:
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.truncated = truncated
        self.keep_alive = keep_alive

    def header(self, name: str) -> str | None:
        """First value of header `name` (lower-case)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


_NO_BODY_STATUS = frozenset({204, 304})


_TARGET = re.compile(rb"/[\x21-\x7e]*")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


def request_bytes(method: str, target: str, head_tail: bytes, extra: bytes = b"") -> bytes:
    """`METHOD target HTTP/1.1` plus the per-host header lines (`head_tail`) and extras.

    `target` may come from a redirect the server sent: anything but printable ASCII
    without spaces is refused rather than sent (request splitting).
    """
    return b"%s%s%s\r\n" % (_request_line(method, target), head_tail, extra)


@lru_cache(maxsize=1024)  # every host is asked the same few paths
def _request_line(method: str, target: str) -> bytes:
    raw = target.encode("ascii") if target.isascii() else b""
    if _TARGET.fullmatch(raw) is None:
        raise ValueError(f"refusing to request target {target[:80]!r}")
    return b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), raw)


def head_lines(host: str, user_agent: str) -> bytes:
    """The header lines every request to one host carries (built once per host)."""
    return (
        f"Host: {host}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\nConnection: keep-alive\r\n"
    ).encode("latin-1", errors="replace")


_WHITESPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() strips (str.strip() strips more)


def _lower(name: str) -> str:
    # bytes.lower() lowers ASCII letters only; str.lower() would lower latin-1 ones too.
    return name.lower() if name.isascii() else name.encode("latin-1").lower().decode("latin-1")


# Header lines already read, and what they say: most lines of a scan's responses are the
# same few hundred (Server, Content-Type, Cache-Control, this second's Date...), and a
# dictionary lookup is a fraction of splitting, stripping and lowering the line again.
_lines: dict[str, tuple[str, str]] = {}
_KNOWN_LINES = 4096
_KNOWN_LINE_CHARS = 160


def _parse_head(block: bytes, limits: Limits) -> tuple[str, int, str, list[tuple[str, str]]]:
    end = block.find(b"\r\n")
    if end < 0:  # a status line alone
        first, text, lines = block, "", []
    else:
        # One decode for the whole header block (latin-1 maps every byte to one character).
        first, text = block[:end], block[end + 2 :].decode("latin-1")
        lines = text.split("\r\n")
    if len(lines) > limits.max_headers:
        raise UnexpectedReply(f"more than {limits.max_headers} header lines")
    parts = first.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3:
        raise UnexpectedReply(f"not an HTTP/1.x status line: {first[:60]!r}")
    # Three ASCII digits (RFC 9110 15): int() alone would take "-12", "+20" or "1_0".
    if not parts[1].isdigit() or parts[1][0] == ord("0"):
        raise UnexpectedReply(f"bad status code {parts[1][:10]!r}")
    status = int(parts[1])
    version = parts[0].decode("latin-1")
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    if text[:1] in (" ", "\t") or "\r\n " in text or "\r\n\t" in text:
        return version, status, reason, _folded(lines)
    # No folded line (nearly every response): each line alone, most from `_lines`.
    known = _lines.get
    headers = [p for line in lines if (p := known(line) or _header_line(line)) is not None]
    return version, status, reason, headers


def _header_line(line: str) -> tuple[str, str] | None:
    """(lower-case name, value) of one header line; None for a line without a colon, which
    carries nothing we could use."""
    name, sep, value = line.partition(":")
    if not sep:
        return None
    parsed = (_lower(name.strip(_WHITESPACE)), value.strip(_WHITESPACE))
    if len(line) <= _KNOWN_LINE_CHARS:
        if len(_lines) >= _KNOWN_LINES:
            _lines.clear()
        _lines[line] = parsed
    return parsed


def _folded(lines: list[str]) -> list[tuple[str, str]]:
    """The header lines of a block with obsolete line folding (RFC 9112 5.2): a line that
    starts with a space or tab continues the last value."""
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and headers:
            key, previous = headers[-1]
            headers[-1] = (key, previous + " " + line.strip(_WHITESPACE))
            continue
        parsed = _header_line(line)
        if parsed is not None:
            headers.append(parsed)
    return headers


async def _read_chunked(reader: ByteSource, cap: int) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    size_left = cap
    while True:
        line = await reader.readuntil(b"\r\n")
        digits = line.split(b";", 1)[0].strip()
        # Hex digits only: int(x, 16) would also take "0x10", "+a", "-1" and "1_0".
        if _HEX.fullmatch(digits) is None:
            raise UnexpectedReply(f"bad chunk size line {line[:40]!r}")
        size = int(digits, 16)
        if size == 0:
            for _ in range(100):  # trailer section, bounded like the headers
                if await reader.readuntil(b"\r\n") == b"\r\n":
                    return b"".join(parts), False
            raise UnexpectedReply("endless chunked trailer")
        if size > size_left:
            if size_left:
                parts.append(await reader.readexactly(size_left))
            return b"".join(parts), True
        parts.append(await reader.readexactly(size))
        size_left -= size
        if await reader.readexactly(2) != b"\r\n":
            raise UnexpectedReply("chunk not followed by CRLF")


async def _read_until_close(reader: ByteSource, cap: int) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    got = 0
    while got < cap:
        data = await reader.read(min(65536, cap - got))
        if not data:
            return b"".join(parts), False
        parts.append(data)
        got += len(data)
    return b"".join(parts), True


def _framing(version: str, headers: list[tuple[str, str]]) -> tuple[str | None, bool, bool]:
    """(Content-Length value, chunked, keep-alive) as the header lines say."""
    conn = ""
    length: str | None = None
    chunked = False
    for key, value in headers:
        if key == "content-length":
            if length is not None and length != value:
                raise UnexpectedReply("conflicting Content-Length headers")
            length = value
        elif key == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif key == "connection":
            conn = value.lower()
    keep_alive = ("close" not in conn) if version == "HTTP/1.1" else ("keep-alive" in conn)
    return length, chunked, keep_alive


def _no_body(method: str, status: int) -> bool:
    return method == "HEAD" or status in _NO_BODY_STATUS or 100 <= status < 200


def _length(value: str) -> int | None:
    # Digits only (RFC 9110 8.6): int() would also take "+5", " 5" or "1_0".
    return int(value) if value.isascii() and value.isdigit() else None


def parse_whole(
    buffer: bytes | bytearray, method: str, limits: Limits, head_limit: int
) -> tuple[Response, int] | None:
    """The response at the start of `buffer` and the bytes it takes, when all of it is
    there and it is the common shape: a header block within `head_limit` (the reader's
    separator limit) and a body framed by a Content-Length within the cap, or none.

    Anything else (not there whole, chunked, read until close, over a cap, malformed) is
    None, and `read_response` reads it from the same buffer as it arrives, and judges it:
    one synchronous parse for most responses instead of four reads, each a coroutine.
    """
    if not buffer.startswith(b"HTTP/"):
        return None
    end = buffer.find(b"\r\n\r\n", 5)
    if end < 0 or end - 5 > head_limit:
        return None
    try:
        version, status, reason, headers = _parse_head(bytes(buffer[:end]), limits)
        length, chunked, keep_alive = _framing(version, headers)
    except UnexpectedReply:
        return None
    start = end + 4
    if _no_body(method, status):
        return Response(version, status, reason, headers, b"", False, keep_alive), start
    if chunked or length is None:
        return None
    n = _length(length)
    if n is None or n > limits.max_body_bytes or len(buffer) < start + n:
        return None
    body = bytes(buffer[start : start + n])
    return Response(version, status, reason, headers, body, False, keep_alive), start + n


async def read_response(reader: ByteSource, method: str, limits: Limits) -> Response:
    """Read one response; the caller bounds the time."""
    # Judge the first bytes at once: a server sending garbage is a protocol error, not a
    # header block to wait for until the connection closes.
    start = await reader.readexactly(5)
    if start != b"HTTP/":
        raise UnexpectedReply(f"not an HTTP/1.x status line: {start!r}")
    block = start + await reader.readuntil(b"\r\n\r\n")  # the stream limit caps the block
    version, status, reason, headers = _parse_head(block[:-4], limits)
    length, chunked, keep_alive = _framing(version, headers)

    cap = limits.max_body_bytes
    truncated = False
    if _no_body(method, status):
        body = b""
    elif chunked:
        body, truncated = await _read_chunked(reader, cap)
    elif length is not None:
        n = _length(length)
        if n is None:
            what = "negative" if length.startswith("-") else "bad"
            raise UnexpectedReply(f"{what} Content-Length {length[:20]!r}")
        if n > cap:
            body, truncated = await reader.readexactly(cap), True
        else:
            body = await reader.readexactly(n)
    else:
        body, truncated = await _read_until_close(reader, cap)
        keep_alive = False
    if truncated:
        keep_alive = False
    return Response(version, status, reason, headers, body, truncated, keep_alive)


__all__ = ["Limits", "Response", "head_lines", "parse_whole", "read_response", "request_bytes"]
