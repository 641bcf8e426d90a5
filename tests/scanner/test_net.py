"""The exception mapper, the bounded HTTP reader and certificate parsing, in isolation."""

from __future__ import annotations

import asyncio
import errno
import ssl

import pytest

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
from exwatch.net.http import Limits, Response, read_response, request_bytes
from exwatch.net.mapper import ConnectionClosed, map_exception
from exwatch.net.tls import certificate_fields
from exwatch.probes.http_owa_logon import same_host_target


@pytest.mark.parametrize(
    ("exc", "phase", "cls", "status"),
    [
        (TimeoutError(), "connect", ConnectTimeout, Status.CONNECTION_TIMEOUT),
        (TimeoutError(), "tls", ReadTimeout, Status.IO_TIMEOUT),
        (TimeoutError(), "request", ReadTimeout, Status.IO_TIMEOUT),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
            "connect",
            ConnectRefused,
            Status.CONNECTION_REFUSED,
        ),
        (
            OSError(errno.ECONNREFUSED, "refused"),
            "connect",
            ConnectRefused,
            Status.CONNECTION_REFUSED,
        ),
        (ssl.SSLError(1, "wrong version number"), "tls", TLSFailure, Status.TLS_ERROR),
        (ssl.SSLEOFError(8, "EOF"), "tls", TLSFailure, Status.TLS_ERROR),
        (
            ConnectionResetError(errno.ECONNRESET, "reset"),
            "request",
            ConnectionReset,
            Status.CONNECTION_RESET,
        ),
        (BrokenPipeError(errno.EPIPE, "pipe"), "request", ConnectionReset, Status.CONNECTION_RESET),
        (ConnectionAbortedError(), "tls", ReadTimeout, Status.IO_TIMEOUT),
        (
            asyncio.IncompleteReadError(b"abc", 10),
            "request",
            ConnectionClosed,
            Status.CONNECTION_CLOSED,
        ),
        (
            asyncio.LimitOverrunError("too long", 0),
            "request",
            UnexpectedReply,
            Status.PROTOCOL_ERROR,
        ),
        (ValueError("bad"), "request", UnexpectedReply, Status.PROTOCOL_ERROR),
        (OSError(errno.EHOSTUNREACH, "no route"), "connect", ProbeError, Status.UNKNOWN_ERROR),
    ],
)
def test_mapper_most_specific_first(
    exc: BaseException, phase: str, cls: type, status: Status
) -> None:
    mapped = map_exception(exc, phase)  # type: ignore[arg-type]
    assert type(mapped) is cls
    assert mapped.status is status


def test_mapper_passes_probe_errors_through() -> None:
    err = UnexpectedReply("x")
    assert map_exception(err, "request") is err


DEFAULT_LIMITS = Limits()


def read(data: bytes, method: str = "GET", limits: Limits = DEFAULT_LIMITS) -> Response:
    async def main() -> Response:
        reader = asyncio.StreamReader(limit=limits.max_header_bytes)
        reader.feed_data(data)
        reader.feed_eof()
        return await read_response(reader, method, limits)

    return asyncio.run(main())


def test_headers_lowercased_folded_and_kept_in_order() -> None:
    r = read(
        b"HTTP/1.1 302 Found\r\nX-OWA-Version: 15.1.2176.9\r\nx-feserver: A\r\n"
        b"X-Long: one\r\n two\r\nbroken line\r\nContent-Length: 2\r\n\r\nok"
    )
    assert r.status == 302
    assert r.reason == "Found"
    assert r.header("x-owa-version") == "15.1.2176.9"
    assert r.header("x-long") == "one two"
    assert r.body == b"ok"
    assert r.keep_alive
    assert not r.truncated


def test_keep_alive_rules() -> None:
    assert not read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert not read(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert read(
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
    ).keep_alive
    assert not read(b"HTTP/1.1 200 OK\r\n\r\nuntil close").keep_alive
    assert read(b"HTTP/1.1 304 Not Modified\r\n\r\n").body == b""
    assert read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method="HEAD").body == b""


def test_body_caps() -> None:
    small = Limits(max_body_bytes=10)
    r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100, limits=small)
    assert r.body == b"x" * 10
    assert r.truncated
    assert not r.keep_alive
    r = read(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 100, limits=small)
    assert r.body == b"y" * 10
    assert r.truncated
    r = read(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n"
        + b"z" * 8
        + b"\r\n8\r\n"
        + b"z" * 8
        + b"\r\n",
        limits=small,
    )
    assert r.body == b"z" * 10
    assert r.truncated


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "negative"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "status code"),
        (b"SSH-2.0-x\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX", "CRLF"),
    ],
)
def test_malformed_responses(data: bytes, message: str) -> None:
    with pytest.raises(UnexpectedReply, match=message):
        read(data)


def test_request_target_must_be_printable_ascii() -> None:
    for _ in range(2):  # the second time from the request-line cache: refusals are not cached
        assert request_bytes("GET", "/owa/", b"Host: a\r\n") == (
            b"GET /owa/ HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        assert request_bytes("POST", "/owa/", b"Host: b\r\n", b"X: 1\r\n") == (
            b"POST /owa/ HTTP/1.1\r\nHost: b\r\nX: 1\r\n\r\n"
        )
        for bad in ("/a b", "/a\r\nX: y", "owa/", "/\u00e9", "/\u4e00", "/a\x00"):
            with pytest.raises(ValueError, match="refusing"):
                request_bytes("GET", bad, b"")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/owa/auth/logon.aspx?url=x&reason=0", "/owa/auth/logon.aspx?url=x&reason=0"),
        ("https://127.0.0.1:8443/owa/auth/logon.aspx?a=1", "/owa/auth/logon.aspx?a=1"),
        ("https://127.0.0.1/owa/auth/logon.aspx", None),  # other port
        ("http://127.0.0.1:8443/owa/auth/logon.aspx", None),  # other scheme
        ("https://evil.example:8443/owa/auth/logon.aspx", None),
        ("/ecp/", None),
        ("https://[::1]:8443/owa/auth/x", None),
        ("https://127.0.0.1:99999/owa/auth/x", None),
    ],
)
def test_same_host_redirects(location: str, expected: str | None) -> None:
    assert same_host_target(location, "127.0.0.1", 8443, True) == expected


def test_garbage_certificate_keeps_fingerprint() -> None:
    fields = certificate_fields(b"\x30\x03\x02\x01\x00")
    assert len(fields["sha256"]) == 64
    assert fields["subject"] is None
    assert "parse_error" in fields


def test_host_header_forms() -> None:
    from exwatch.scan.host import _host_header

    assert _host_header("127.0.0.1", 443, None, True) == ("127.0.0.1", "127.0.0.1")
    assert _host_header("127.0.0.1", 8443, None, True) == ("127.0.0.1:8443", "127.0.0.1")
    assert _host_header("::1", 443, None, True) == ("[::1]", "[::1]")
    assert _host_header("::1", 80, "mail.example.org", False) == (
        "mail.example.org",
        "mail.example.org",
    )
    assert same_host_target("https://[::1]:8443/owa/auth/x", "[::1]", 8443, True) == "/owa/auth/x"


def test_ipv6_loopback_scan() -> None:
    """::1 works like 127.0.0.1 (skipped where the machine has no IPv6 loopback)."""
    from exwatch.scan.host import HostSettings, scan_host

    async def main() -> dict[str, object]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        try:
            server = await asyncio.start_server(handle, "::1", 0)
        except OSError:
            pytest.skip("no IPv6 loopback")
        port = server.sockets[0].getsockname()[1]
        settings = HostSettings(tls=False, connect_timeout=0.5, read_timeout=0.5)
        try:
            return await scan_host("::1", port, None, settings)
        finally:
            server.close()

    record = asyncio.run(main())
    assert record["status"] == "success"
    assert record["http_status"] == 404


def _certificate(subject: str, issuer: str, years: tuple[int, int], serial: int = 7) -> bytes:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, " Contoso, Ltd+#"),
            ]
        )

    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName("mail.contoso.test"), x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(datetime.datetime(years[0], 3, 4, 5, 6, 7))
        .not_valid_after(datetime.datetime(years[1], 12, 31, 23, 59, 58))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


@pytest.mark.parametrize(
    ("issuer", "years"),
    [
        ("mail.contoso.test", (1950, 2049)),  # self-signed, UTCTime both ends
        ("Contoso CA", (2049, 2050)),  # UTCTime, then GeneralizedTime from 2050 on
        ("Contoso CA", (2024, 9999)),
    ],
)
def test_certificate_fields_match_cryptography(issuer: str, years: tuple[int, int]) -> None:
    """The fields read by the DER walk and the name cache are cryptography's own."""
    from cryptography import x509

    for serial in (1, 2):  # the second certificate's names come from the cache
        der = _certificate("mail.contoso.test", issuer, years, serial)
        cert = x509.load_der_x509_certificate(der)
        fields = certificate_fields(der)
        assert fields["subject_cn"] == "mail.contoso.test"
        assert fields["subject"] == cert.subject.rfc4514_string()
        assert fields["issuer"] == cert.issuer.rfc4514_string()
        assert fields["subject"] == "O=\\ Contoso\\, Ltd\\+#,CN=mail.contoso.test"
        assert fields["not_before"] == cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert fields["not_after"] == f"{years[1]:04d}-12-31T23:59:58Z"
        assert fields["san"] == ["mail.contoso.test", "::1"]
        assert "parse_error" not in fields
