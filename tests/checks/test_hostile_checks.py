"""Checks against loopback servers that misbehave while being checked: failure is data,
what was gathered is kept, nothing a server sends grows without bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Callable
from typing import Any

from exwatch.checks import catalogue, indicators
from exwatch.scan.host import HostSettings, scan_host

from ..scanner.conftest import Canned, HttpServerState, Request, Servers, http_handler, response
from ..scanner.exchange_sim import exchange_routes

ALL = catalogue.check_ids()
FAST = HostSettings(
    connect_timeout=0.5, tls_timeout=0.5, read_timeout=0.5, host_timeout=3.0, checks=ALL
)
LOGON = "positive/exchange2016-logon.http"


def _routes(canned: Callable[[str], Canned]) -> dict[str, Callable[[Request], bytes]]:
    return exchange_routes(canned(LOGON), owa_version="15.1.2176.9", exporttool="15.1.2176.9")


def test_host_that_stops_answering_during_the_checks(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """After the fingerprint (one connection), every new connection is dropped at once."""
    state = HttpServerState()
    inner = http_handler(_routes(canned), state)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if state.connections >= 1:
            writer.transport.abort()
            return
        await inner(reader, writer)

    async def go() -> dict[str, Any]:
        async with Servers(server_ctx) as servers:
            port = await servers.start(handler)
            return await scan_host("127.0.0.1", port, None, FAST)

    record = asyncio.run(go())
    json.dumps(record)
    assert record["status"] == "success"
    assert record["exchange"]["build"] == "15.1.2176.9"
    checks = record["checks"]
    assert checks["ran"] == list(ALL)
    states = {k: v["state"] for k, v in checks["behaviour"].items()}
    # aborted requests whose control request fails too are not a mitigation
    assert states == {
        "proxylogon": "inconclusive",
        "proxyshell": "failed",
        "proxynotshell-mitigation": "inconclusive",
    }
    assert checks["compromise"]["state"] == "unknown"
    assert checks["compromise"]["failure_count"] > 0
    # the build's verdicts stand: nothing was settled by a host that did not answer
    assert checks["settled"] == {}
    assert record["cves"]["CVE-2021-26855"] == "patched"


def test_catch_all_server_with_huge_hostile_answers(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """Every path Exchange's routes lack answers 200 with a 50 KB body
    that starts like a PST file, and a header full of control characters: a catch-all, so
    `unknown`, never compromised; bodies are judged, never kept."""
    big = b"!BDN" + b"\x1b[2J<script>alert(1)</script>" * 1_500

    def hostile(req: Request) -> bytes:
        return response(200, [("X-Evil", "\x1b]0;owned\x07")], big)

    class CatchAll(dict[str, Callable[[Request], bytes]]):
        def get(self, key: str, default: Any = None) -> Any:
            return super().get(key) or hostile

    handler = http_handler(CatchAll(_routes(canned)), HttpServerState())

    async def go() -> dict[str, Any]:
        async with Servers(server_ctx) as servers:
            port = await servers.start(handler)
            return await scan_host("127.0.0.1", port, None, FAST)

    record = asyncio.run(go())
    assert len(json.dumps(record)) < 100_000
    compromise = record["checks"]["compromise"]
    assert compromise["state"] == "unknown"
    assert compromise["findings"] == []
    assert all(b["page"] for b in compromise["baselines"])


def test_checks_stop_at_their_deadline_and_say_so(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """A server that takes 30 ms per answer and checks given half a second: the shell sweep
    stops where the time ends, the host is `unknown`, and the record is whole."""
    routes = _routes(canned)
    state = HttpServerState()
    inner = http_handler(routes, state)

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        class Slow:
            """The writer, each answer held back 30 ms."""

            pending = b""

            def __getattr__(self, name: str) -> Any:
                return getattr(writer, name)

            def write(self, data: bytes) -> None:
                self.pending += data

            async def drain(self) -> None:
                await asyncio.sleep(0.03)
                writer.write(self.pending)
                self.pending = b""
                await writer.drain()

        with contextlib.suppress(asyncio.CancelledError):  # the test's end stops it
            await inner(reader, Slow())  # type: ignore[arg-type]

    settings = HostSettings(
        connect_timeout=0.5,
        tls_timeout=0.5,
        read_timeout=0.5,
        host_timeout=1.0,
        checks=ALL,
        check_timeout=0.5,
    )

    async def go() -> dict[str, Any]:
        async with Servers(server_ctx) as servers:
            port = await servers.start(slow)
            return await scan_host("127.0.0.1", port, None, settings)

    record = asyncio.run(go())
    compromise = record["checks"]["compromise"]
    assert compromise["state"] == "unknown"
    assert compromise["paths_asked"] < len(indicators.load().paths)
    assert "not asked" in compromise["reason"] or compromise["failure_count"]
    assert record["exchange"]["build"] == "15.1.2176.9"
