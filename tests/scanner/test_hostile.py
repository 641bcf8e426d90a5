"""Hostile and broken servers: every case ends as a record with a status, in bounded time.

Timeouts are 0.5 s; the elapsed-time checks use generous bounds only as a safety net
against a hang (they say "bounded", not "fast").
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from exwatch.scan.host import HostSettings, scan_host

from .conftest import Canned, Servers, response
from .exchange_sim import EXPORTTOOL, exchange_routes

Run = Callable[[Coroutine[Any, Any, Any]], Any]
FAST = HostSettings(connect_timeout=0.5, tls_timeout=0.5, read_timeout=0.5, host_timeout=3.0)

# Every case runs under each transport (`--transport python|wreq`).
pytestmark = pytest.mark.usefixtures("transport")
BOUND = 2.5  # seconds: a safety net against hangs, not a speed assertion

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


async def scan_handler(
    server_ctx: ssl.SSLContext, handler: Handler, *, tls: bool = True, settings: HostSettings = FAST
) -> tuple[dict[str, Any], float]:
    async with Servers(server_ctx) as servers:
        port = await servers.start(handler, tls=tls)
        t0 = time.monotonic()
        record = await scan_host("127.0.0.1", port, None, settings)
        elapsed = time.monotonic() - t0
    return record, elapsed


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def test_slow_drip_is_io_timeout_and_keeps_certificate(
    run: Run, server_ctx: ssl.SSLContext
) -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 100_000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)

    record, elapsed = run(scan_handler(server_ctx, drip))
    assert record["status"] == "io-timeout"
    assert "timed out" in record["error"]
    assert record["tls"]["subject_cn"] == "EXCH01"  # partial results survive
    assert record["exchange"] is None
    assert elapsed < BOUND


def test_endless_headers_are_protocol_error(run: Run, server_ctx: ssl.SSLContext) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(1000):  # 1.3 MB, far past the cap; bounded so the test server ends
            writer.write(b"X-More: yes\r\n" * 100)
            await writer.drain()
            await asyncio.sleep(0)  # asyncio's SSL writer does not block after a reset

    record, elapsed = run(scan_handler(server_ctx, endless))
    assert record["status"] == "protocol-error"
    assert "size limit" in record["error"]
    assert elapsed < BOUND


def test_huge_header_line_is_protocol_error(server_ctx: ssl.SSLContext) -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Owa-Version: " + b"9" * 200_000 + b"\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    record, elapsed = asyncio.run(scan_handler(server_ctx, huge))
    assert record["status"] == "protocol-error"
    assert record["exchange"] is None
    assert elapsed < BOUND


def test_too_many_header_lines_is_protocol_error(server_ctx: ssl.SSLContext) -> None:
    async def many(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 500 + b"Content-Length: 0\r\n\r\n")
        await writer.drain()

    record, _ = asyncio.run(scan_handler(server_ctx, many))
    assert record["status"] == "protocol-error"
    assert "header lines" in record["error"]


def test_garbage_reply_is_protocol_error(run: Run, server_ctx: ssl.SSLContext) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(bytes(range(256)) * 4 + b"\r\n\r\n")
        await writer.drain()

    record, _ = run(scan_handler(server_ctx, garbage))
    assert record["status"] == "protocol-error"
    assert "status line" in record["error"]


def test_early_close_is_connection_closed(run: Run, server_ctx: ssl.SSLContext) -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        await writer.drain()
        writer.close()

    record, elapsed = run(scan_handler(server_ctx, close))
    assert record["status"] == "connection-closed"
    assert record["tls"] is not None
    assert elapsed < BOUND


def test_short_body_is_connection_closed(server_ctx: ssl.SSLContext) -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc")
        await writer.drain()
        writer.close()

    record, _ = asyncio.run(scan_handler(server_ctx, short))
    assert record["status"] == "connection-closed"
    assert "3 bytes" in record["error"]


def test_plain_tcp_on_tls_port_is_tls_error(run: Run, server_ctx: ssl.SSLContext) -> None:
    async def ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n" + b"\x00garbage" * 100)
        await writer.drain()
        await asyncio.sleep(0.2)

    record, elapsed = run(scan_handler(server_ctx, ssh, tls=False))
    assert record["status"] == "tls-error"
    assert record["tls"] is None
    assert elapsed < BOUND


def test_closed_port_is_connection_refused(run: Run) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    record = run(scan_host("127.0.0.1", port, None, FAST))
    assert record["status"] == "connection-refused"
    assert record["exchange"] is None
    assert record["tls"] is None
    assert record["http_status"] is None


def test_silent_accept_is_tls_timeout(run: Run, server_ctx: ssl.SSLContext) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    record, elapsed = run(scan_handler(server_ctx, silent, tls=False))
    assert record["status"] == "io-timeout"
    assert record["error"].endswith("TLS handshake timed out")
    assert elapsed < BOUND


def test_silent_after_tls_is_io_timeout_with_certificate(
    run: Run, server_ctx: ssl.SSLContext
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    record, elapsed = run(scan_handler(server_ctx, silent))
    assert record["status"] == "io-timeout"
    assert record["tls"]["sha256"]
    assert elapsed < BOUND


def test_host_deadline_bounds_a_slow_exchange(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """Every follow-up answers just before the read timeout: the host deadline stops them."""
    # No header anywhere: the build probes would go on through every endpoint.
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version=None)

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from .conftest import HttpServerState, http_handler

        fast = http_handler(routes, HttpServerState())
        slow_reader = asyncio.StreamReader()

        async def pump() -> None:
            while data := await reader.read(65536):
                await asyncio.sleep(0.4)
                slow_reader.feed_data(data)
            slow_reader.feed_eof()

        task = asyncio.create_task(pump())
        try:
            await fast(slow_reader, writer)
        finally:
            task.cancel()

    settings = HostSettings(
        connect_timeout=0.5, tls_timeout=0.5, read_timeout=0.5, host_timeout=1.0
    )
    record, elapsed = asyncio.run(scan_handler(server_ctx, slow, settings=settings))
    assert record["status"] == "success"  # the first stage answered
    assert record["exchange"]["build"] == "15.1.2176"  # the page's CU, kept
    assert "deadline" in record["error"] or "timed out" in record["error"]
    assert elapsed < BOUND


def test_malformed_ntlm_is_noted_not_fatal(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    # type 2, target-info buffer pointing far past the end of the message
    bad = "TlRMTVNTUAACAAAABgAGADgAAAAFAomiASNFZ4mrze8AAAAAAAAAAP//AAD///8AAAAAAAAAAAAAAAAA"
    routes = exchange_routes(
        canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9", ntlm=bad
    )

    async def main() -> dict[str, Any]:
        async with Servers(server_ctx) as servers:
            port, _ = await servers.http(routes)
            return await scan_host("127.0.0.1", port, None, FAST)

    record = run(main())
    assert record["status"] == "success"
    assert record["ntlm"] is None
    assert "malformed NTLM challenge" in record["error"]
    assert record["exchange"]["build"] == "15.1.2176.9"
    assert "ntlm" not in record["exchange"]["sources"]


@pytest.mark.parametrize(
    "token",
    ["!!!not base64!!!", "TlRMTVNTUAABAAAA", "QUFBQQ==", "TlRMTVNTUAACAAAA" + "A" * 20000],
)
def test_other_broken_ntlm_tokens(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned], token: str
) -> None:
    routes = exchange_routes(
        canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9", ntlm=token
    )

    async def main() -> dict[str, Any]:
        async with Servers(server_ctx) as servers:
            port, _ = await servers.http(routes)
            return await scan_host("127.0.0.1", port, None, FAST)

    record = asyncio.run(main())
    assert record["status"] == "success"
    assert record["ntlm"] is None
    assert "NTLM" in record["error"]


def test_xml_bomb_manifest_is_bounded_and_ignored(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    lol = ['<?xml version="1.0"?>', "<!DOCTYPE lolz [", '<!ENTITY lol "lol">']
    for i in range(1, 10):
        lol.append(f'<!ENTITY lol{i} "' + f"&lol{i - 1};" * 10 + '">')
    lol.append("]>")
    name = "microsoft.exchange.ediscovery.exporttool.application"
    lol.append(f'<assemblyIdentity name="{name}" version="&lol9;" />')
    body = "\n".join(lol) + "\n<!--" + "x" * 400_000 + "-->"
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9")
    routes[EXPORTTOOL] = lambda r: response(200, [("Content-Type", "application/xml")], body)

    async def main() -> dict[str, Any]:
        async with Servers(server_ctx) as servers:
            port, _ = await servers.http(routes)
            return await scan_host("127.0.0.1", port, None, FAST)

    record = run(main())
    assert record["status"] == "success"
    assert record["exchange"]["build"] == "15.1.2176.9"
    assert "exporttool" not in record["exchange"]["sources"]


def test_endless_chunked_body_is_truncated(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    page = canned("positive/exchange2016-logon.http").body

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-OWA-Version: 15.1.2176.9\r\n\r\n"
        )
        writer.write(b"%x\r\n%s\r\n" % (len(page), page))
        for _ in range(200):  # 3.2 MB, far past the cap
            writer.write(b"4000\r\n" + b"z" * 0x4000 + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0)

    record, elapsed = run(scan_handler(server_ctx, chunked))
    assert record["status"] == "success"
    # It answers every path with the logon page: what it claims is kept, as a suspect.
    assert record["exchange"] is None
    assert record["suspect"]["build"] == "15.1.2176.9"
    assert "catch-all" in record["suspect"]["checks"]
    assert elapsed < BOUND


def test_chunked_logon_page_is_read(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    page = canned("positive/exchange2019-proxied-logon.http").body
    half = len(page) // 2

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request(reader)
            if head.startswith(b"GET /owa/auth/15.2.1118/themes/resources/favicon.ico "):
                icon = b"\x00\x00\x01\x00"  # its own static file is there: a real server
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/x-icon\r\n")
                writer.write(b"Content-Length: 4\r\n\r\n" + icon)
            elif head.startswith(b"GET /owa/auth/logon.aspx "):
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for part in (page[:half], page[half:]):
                    writer.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
                writer.write(b"0\r\nX-Trailer: 1\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    record, _ = asyncio.run(scan_handler(server_ctx, chunked))
    assert record["status"] == "success"
    assert record["exchange"]["build"] == "15.2.1118"
    assert record["error"] is None


def test_huge_content_length_reads_only_the_cap(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    page = canned("positive/exchange2016-logon.http").body

    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n" + page)
        writer.write(b" " * 300_000)
        await writer.drain()
        await asyncio.sleep(5)

    settings = HostSettings(
        read_timeout=0.5, tls_timeout=0.5, connect_timeout=0.5, follow_ups=False
    )
    record, elapsed = asyncio.run(scan_handler(server_ctx, huge, settings=settings))
    assert record["status"] == "success"
    assert record["exchange"]["build"] == "15.1.2176"
    assert elapsed < BOUND


def test_read_until_close_body(server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]) -> None:
    page = canned("positive/exchange2013-logon.http").body

    async def legacy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n" + page)
        await writer.drain()
        writer.close()

    settings = HostSettings(
        read_timeout=0.5, tls_timeout=0.5, connect_timeout=0.5, follow_ups=False
    )
    record, _ = asyncio.run(scan_handler(server_ctx, legacy, settings=settings))
    assert record["status"] == "success"
    assert record["exchange"]["build"] == "15.0.1497"


def test_hostile_redirect_location_is_not_requested(server_ctx: ssl.SSLContext) -> None:
    """A Location with control characters (request splitting) is not followed."""
    seen: list[bytes] = []

    async def splitter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request(reader)
            seen.append(head.split(b"\r\n")[0])
            writer.write(
                b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n"
                b"Location: /owa/auth/logon.aspx?x=\x01\x7f HTTP/1.1\r\n\r\n"
            )
            await writer.drain()

    record, _ = asyncio.run(scan_handler(server_ctx, splitter))
    assert record["status"] == "success"
    # not followed; the logon page settled nothing, so Autodiscover is asked (only that)
    assert seen == [
        b"GET /owa/auth/logon.aspx HTTP/1.1",
        b"GET /autodiscover/autodiscover.xml HTTP/1.1",
    ]


@pytest.mark.parametrize("speaks", [b"", b"220 mail.example ESMTP ready\r\n"])
def test_hang_up_at_once_is_a_reset_or_tls_error(
    run: Run, server_ctx: ssl.SSLContext, speaks: bytes
) -> None:
    """A TLS port whose server hangs up as soon as it accepts (a full service, a filter),
    with or without a line first: the connection is answered, so not a connect failure,
    and what the handshake met says which (a reset, or bytes that are not TLS)."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(speaks)
        await writer.drain()
        writer.close()

    record, elapsed = run(scan_handler(server_ctx, hang_up, tls=False))
    assert record["status"] == ("tls-error" if speaks else "connection-reset"), record["error"]
    assert record["tls"] is None
    assert elapsed < BOUND
