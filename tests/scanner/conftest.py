"""Loopback TLS servers imitating Exchange (and hostile servers) for the scanner tests.

Every server listens on 127.0.0.1 with an OS-chosen port, inside the event loop of the
test that started it (`asyncio.run` per test, no plugin).  Certificates are generated once
per session with `cryptography`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exwatch.net.transport import TRANSPORTS
from exwatch.scan import host

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True)
class Canned:
    """A response read from a corpus file (status line, header lines, body)."""

    status_line: str
    headers: list[tuple[str, str]]
    body: bytes

    def encode(
        self, extra: list[tuple[str, str]] | None = None, drop: tuple[str, ...] = ()
    ) -> bytes:
        """The canned response with `drop` removed from its own headers, then `extra`."""
        lines = [self.status_line]
        for name, value in self.headers:
            if name.lower() in drop or name.lower() == "content-length":
                continue
            lines.append(f"{name}: {value}")
        lines += [
            f"{name}: {value}" for name, value in extra or [] if name.lower() != "content-length"
        ]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ")[1])


def load_canned(path: Path) -> Canned:
    text = path.read_text("utf-8")
    head, _, body = text.partition("\n\n")
    lines = head.splitlines()
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Canned(lines[0].strip(), headers, body.encode("utf-8"))


def response(
    status: int,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | str = b"",
    *,
    reason: str = "OK",
) -> bytes:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    lines.append(f"Content-Length: {len(raw)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + raw


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


Route = Callable[[Request], bytes]


@dataclass
class HttpServerState:
    requests: list[Request] = field(default_factory=list)
    connections: int = 0


def http_handler(routes: dict[str, Route], state: HttpServerState) -> Handler:
    """A keep-alive HTTP/1.1 server answering from `routes` (404 for anything else)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                req = Request(method, target, headers)
                state.requests.append(req)
                route = routes.get(req.path)
                data = route(req) if route else response(404, body="not found", reason="Not Found")
                writer.write(data)
                await writer.drain()
                if b"\r\nConnection: close\r\n" in data.split(b"\r\n\r\n", 1)[0] + b"\r\n":
                    return
        finally:
            writer.close()

    return handle


class Servers:
    """Start servers in the current loop; all are closed on exit."""

    def __init__(self, server_ctx: ssl.SSLContext) -> None:
        self.server_ctx = server_ctx
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, handler: Handler, *, tls: bool = True) -> int:
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await handler(reader, writer)
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            finally:
                self._tasks.discard(task)
                writer.close()

        server = await asyncio.start_server(
            guarded, "127.0.0.1", 0, ssl=self.server_ctx if tls else None
        )
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def http(
        self, routes: dict[str, Route], *, tls: bool = True
    ) -> tuple[int, HttpServerState]:
        state = HttpServerState()
        port = await self.start(http_handler(routes, state), tls=tls)
        return port, state

    async def __aenter__(self) -> Servers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self._servers:
            server.close()
        if self._tasks:
            # A moment for handlers whose client has just gone to see it and end (wreq
            # closes its sockets from its own thread, a little after the scan returns);
            # the ones that never end by themselves (silent servers) are cancelled.
            await asyncio.wait(list(self._tasks), timeout=0.2)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for server in self._servers:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(server.wait_closed(), 1.0)


@pytest.fixture(scope="session")
def cert_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate naming the server (CN = server name, as Exchange's own)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "EXCH01"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "exwatch tests"),
        ]
    )
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1234)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("exch01.contoso.local"),
                    x509.DNSName("mail.contoso.example"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="session")
def server_ctx(cert_pem: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert_pem)
    return ctx


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    uvloop = pytest.importorskip("uvloop")
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on the stdlib loop and, as a second case, on uvloop."""
    factory = _uvloop_factory() if request.param == "uvloop" else None

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(coro)

    return runner


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per transport (`--transport`): the test module's `scan_host`
    gets its settings with this transport."""
    name: str = request.param
    real = host.scan_host

    async def scan_host(
        ip: str, port: int, hostname: str | None, settings: Any, claim: Any = None
    ) -> dict[str, Any]:
        changed = dataclasses.replace(settings, transport=name)
        return await real(ip, port, hostname, changed, claim)

    monkeypatch.setattr(request.module, "scan_host", scan_host)
    return name


@pytest.fixture
def canned() -> Callable[[str], Canned]:
    """Load a corpus response by name ("positive/exchange2016-logon.http")."""
    return lambda name: load_canned(CORPUS / name)
