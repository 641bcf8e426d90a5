"""Crashes and property violations the fuzz targets found, kept as regression tests."""

from __future__ import annotations

import asyncio

import pytest

from exwatch.errors import UnexpectedReply
from exwatch.net.http import Limits, read_response


async def _read(data: bytes) -> int:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    response = await read_response(reader, "GET", Limits())
    return response.status


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 -12 \r\n\r\n",  # found by the http-response target: status -12 was recorded
        b"HTTP/1.1 +20 OK\r\n\r\n",
        b"HTTP/1.1 1_0 OK\r\n\r\n",
        b"HTTP/1.1 099 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_numbers_in_responses_are_strict_digits(data: bytes) -> None:
    with pytest.raises(UnexpectedReply):
        asyncio.run(_read(data))


def test_ordinary_numbers_still_read() -> None:
    assert asyncio.run(_read(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno")) == 404
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA;x=1\r\n0123456789\r\n0\r\n\r\n"
    )
    assert asyncio.run(_read(chunked)) == 200
