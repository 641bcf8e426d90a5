"""The lab's misbehaving hosts: silent, slow, endless, garbage, early close, broken TLS, reset.

Run by the lab as a child process: `python -m exwatch.lab.hostile SPEC.json`, where SPEC
holds {"port", "cert", "key", "hosts": [{"ip", "behaviour"}]}.  It prints `ready N` once
every address is bound and runs until SIGTERM.  Every behaviour is bounded in time and
bytes so a forgotten client cannot make it spin forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import ssl
import struct
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from exwatch.lab.process import raise_fd_limit

HOLD_SECONDS = 300.0  # longest any connection is kept open
DRIP_INTERVAL = 1.0
ENDLESS_LIMIT = 32 * 1024 * 1024  # bytes of headers before giving up on the client
_GARBAGE = bytes((i * 131 + 7) % 256 for i in range(4096))  # fixed, starts with non-HTTP bytes

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    """Read up to the end of the request head (or give up quietly)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), timeout=2)


async def slow_drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    data = b"HTTP/1.1 200 OK\r\nX-Drip: " + b"." * 100_000
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOLD_SECONDS
    for i in range(len(data)):
        if writer.is_closing() or loop.time() > deadline:
            break
        writer.write(data[i : i + 1])
        await writer.drain()
        await asyncio.sleep(DRIP_INTERVAL)
    await _close(writer)


async def endless_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/10.0\r\n")
    sent = 0
    line = 0
    while sent < ENDLESS_LIMIT and not writer.is_closing():
        chunk = b"".join(b"X-Lab-Pad-%d: %s\r\n" % (line + j, b"a" * 100) for j in range(128))
        line += 128
        writer.write(chunk)
        sent += len(chunk)
        await writer.drain()
    await _close(writer)


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(_GARBAGE)
    await writer.drain()
    await asyncio.sleep(1)
    await _close(writer)


async def early_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await _close(writer)


async def broken_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Answer the ClientHello in plain text, as a server speaking HTTP on a TLS port does.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.read(4096), timeout=10)
    writer.write(
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 48\r\n"
        b"Connection: close\r\n\r\n<html><body>400 Bad Request</body></html>\r\n\r\n"
    )
    with contextlib.suppress(Exception):
        await writer.drain()
    await _close(writer)


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.read(4096), timeout=10)
    sock = writer.get_extra_info("socket")  # asyncio's TransportSocket wrapper
    if sock is not None:
        # SO_LINGER with a zero timeout turns close() into an RST.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Accept and never answer; drain what arrives so the client's writes never block.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOLD_SECONDS
    with contextlib.suppress(Exception):
        while loop.time() < deadline:
            data = await asyncio.wait_for(reader.read(65536), timeout=deadline - loop.time())
            if not data:
                break
    writer.transport.abort()


TLS_BEHAVIOURS: dict[str, Handler] = {
    "slow-drip": slow_drip,
    "endless-headers": endless_headers,
    "garbage": garbage,
    "early-close": early_close,
}
RAW_BEHAVIOURS: dict[str, Handler] = {
    "broken-tls": broken_tls,
    "reset": reset,
    "silent": silent,
}


def _guarded(handler: Handler) -> Handler:
    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A client going away mid-behaviour is the normal end, not an error.
        with contextlib.suppress(Exception):
            await handler(reader, writer)
        if not writer.is_closing():
            writer.transport.abort()

    return run


async def serve(spec: dict[str, Any]) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # TLS 1.2 and 1.3, as the ground truth says (plan.tls_versions); the default, made plain.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(spec["cert"], spec["key"])
    port = int(spec["port"])
    servers = []
    for entry in spec["hosts"]:
        behaviour = entry["behaviour"]
        if behaviour in TLS_BEHAVIOURS:
            handler, use_tls = TLS_BEHAVIOURS[behaviour], True
        elif behaviour in RAW_BEHAVIOURS:
            handler, use_tls = RAW_BEHAVIOURS[behaviour], False
        else:
            raise SystemExit(f"unknown behaviour {behaviour!r}")
        servers.append(
            await asyncio.start_server(
                _guarded(handler),
                host=entry["ip"],
                port=port,
                ssl=ctx if use_tls else None,
                ssl_handshake_timeout=30 if use_tls else None,
                backlog=512,
                reuse_address=True,
            )
        )
    print(f"ready {len(servers)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m exwatch.lab.hostile SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text("utf-8"))
    raise_fd_limit()
    # The lab starts this process with PR_SET_PDEATHSIG: it ends when the lab does.
    asyncio.run(serve(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
