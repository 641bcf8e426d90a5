"""`HttpClient` over wreq (Rust: hyper + BoringSSL), the opt-in `--transport wreq`.

Same interface and the same statuses as the default client (`client.HttpClient`), for less
CPU per host: the TLS handshake and the HTTP/1.1 parsing run in Rust, off the event loop's
Python code.  Needs the optional dependency (`pip install 'exwatch[fast]'`).

How the scanner's needs map onto wreq (see performance.md, "Issue 19: transports"):

- one wreq `Client` per host, so its pool is that host's keep-alive connection and dropping
  the client closes it; a name for SNI is pinned to the address by a resolve override (no
  DNS lookup), an address as the URL host sends no SNI; the Host header is ours;
- verification off, certificate DER from `TlsInfo.peer_certificate()`.  wreq does not
  report the negotiated version or cipher, so the record's `tls.version`/`cipher` are null
  unless the certificate-only handshake below ran;
- the head is bounded by hyper (`max_buf_size`, `max_headers`), the body by reading the
  stream up to `Limits.max_body_bytes`, after which the connection is dropped;
- wreq's `connect_timeout` bounds TCP and TLS (set to connect + tls); the error says which
  phase timed out.  The whole request (a slow drip defeats a per-read timeout) is bounded
  here with asyncio, inside the per-host deadline;
- a response is the only place wreq hands out the certificate, so when TLS finished but no
  response came (slow drip, silence, garbage, early close) one certificate-only handshake
  with Python's ssl keeps the certificate, as the default client does.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from typing import Any

import wreq
from wreq import Client, Method, TlsVersion, Version, http1, redirect
from wreq.dns import DnsOptions

from exwatch.errors import (
    ConnectionReset,
    ConnectRefused,
    ConnectTimeout,
    ProbeError,
    ReadTimeout,
    TLSFailure,
    UnexpectedReply,
)
from exwatch.net.client import HttpClient, Timeouts
from exwatch.net.http import Limits, Response, request_bytes
from exwatch.net.mapper import ConnectionClosed, map_exception
from exwatch.net.tls import (
    certificate_fields,
    client_context,
    no_certificate_fields,
    session_info,
)

_NO_BODY_STATUS = frozenset({204, 304})
_BASE_NAMES = frozenset({"host", "user-agent", "accept", "connection"})


def _seconds(value: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=max(value, 0.001))


def _tls_record(der: bytes | None) -> dict[str, Any]:
    info: dict[str, Any] = {"version": None, "cipher": None}  # wreq does not tell them
    info.update(certificate_fields(der) if der else no_certificate_fields())
    return info


def _map(exc: BaseException, *, connected: bool, got: int, max_headers: int) -> ProbeError:
    """wreq's exceptions -> the ProbeError the default client would raise for the same
    server.  wreq says what failed only in its message (a Rust error chain), so the
    message is matched, most specific first."""
    if isinstance(exc, ProbeError):
        return exc
    text = str(exc)
    if isinstance(exc, TimeoutError):  # ours (asyncio.timeout), around the whole request
        return ReadTimeout("timed out waiting for the response")
    if isinstance(exc, wreq.ConnectionError) and not connected:
        if "tcp connect error" in text:
            if "ConnectionRefused" in text:
                return ConnectRefused("connection refused")
            if "TimedOut" in text:
                return ConnectTimeout("TCP connect timed out")
            if "ConnectionReset" in text:
                return ConnectionReset("connection reset by peer")
            return ProbeError(f"TCP connect failed: {text[:300]}")
        if "TimedOut" in text:  # TCP was up: the handshake ran out of time
            return ReadTimeout("TLS handshake timed out")
        if "ConnectionReset" in text:
            return ConnectionReset("connection reset by peer during the TLS handshake")
        if "SSL" in text or "Ssl" in text or "TLS" in text:
            return TLSFailure(f"TLS handshake failed: {text[:300]}")
        if "SYSCALL" in text and "cause: None" in text:
            # BoringSSL's SSL_ERROR_SYSCALL with no OS error: EOF mid-handshake, which the
            # default client meets as a reset (the server hung up as it accepted).
            return ConnectionReset("server closed the connection during the TLS handshake")
        if "UnexpectedEof" in text or "closed" in text:
            return TLSFailure(f"TLS handshake failed: server closed the connection: {text[:200]}")
        return ProbeError(f"connect failed: {text[:300]}")
    if isinstance(exc, wreq.TlsError):
        return TLSFailure(text[:300])
    if isinstance(exc, wreq.TimeoutError):
        return ReadTimeout("timed out waiting for the response")
    if "TooLarge" in text:  # hyper does not say which of its two caps was hit
        return UnexpectedReply(
            f"response header block exceeds the size limit or has more than "
            f"{max_headers} header lines"
        )
    if "Parse(Version" in text or "Parse(VersionH2" in text:
        return UnexpectedReply("not an HTTP/1.x status line")
    if "Parse(Status" in text:
        return UnexpectedReply("bad status code")
    if "ContentLength" in text:
        return UnexpectedReply("conflicting or bad Content-Length headers")
    if "chunk" in text.lower():
        return UnexpectedReply("bad chunk size line")
    if "Parse(" in text:
        return UnexpectedReply(f"malformed response: {text[:200]}")
    if "ConnectionReset" in text or isinstance(exc, wreq.ConnectionResetError):
        return ConnectionReset("connection reset by peer")
    if "IncompleteMessage" in text or "IncompleteBody" in text or "UnexpectedEof" in text:
        return ConnectionClosed(f"server closed the connection after {got} bytes of a response")
    if isinstance(exc, OSError | ValueError | UnicodeError):
        return map_exception(exc, "request")
    return ProbeError(f"{type(exc).__name__}: {text[:300]}")


class WreqHttpClient(HttpClient):
    """`HttpClient` whose connections, TLS and HTTP parsing are wreq's."""

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
        # The parent's state is ours too (deadline, counters, tls); its streams stay unused.
        super().__init__(
            ip,
            port,
            use_tls=use_tls,
            sni=sni,
            host_header=host_header,
            user_agent=user_agent,
            timeouts=timeouts,
            limits=limits,
        )
        name = sni if (use_tls and sni) else None
        host = name or (f"[{ip}]" if ":" in ip else ip)
        self._base = f"{'https' if use_tls else 'http'}://{host}:{port}"
        # Built once per host: the lines every request carries (extras are added per call).
        self._headers = {
            "Host": host_header,
            "User-Agent": user_agent,
            "Accept": "*/*",
            "Connection": "keep-alive",
        }
        self._name = name
        self._wreq: Client | None = None
        self._fresh = True  # the next request opens a connection (no idle one is kept)
        self._got = 0  # body bytes of the response being read

    def _client(self) -> Client:
        if self._wreq is None:
            dns = DnsOptions(system_dns=True)  # no resolver of wreq's own is started
            if self._name is not None:
                dns.add_resolve(self._name, [ipaddress.ip_address(self.ip)])
            self._wreq = Client(
                tls_verify=False,
                tls_verify_hostname=False,
                tls_info=True,
                tls_min_version=TlsVersion.TLS_1_0,  # a census also reaches TLS 1.0-only hosts
                http1_only=True,
                http1_options=http1.Http1Options(
                    max_headers=self.limits.max_headers,
                    max_buf_size=max(self.limits.max_header_bytes, 8192),
                    # Read what the default client reads: folded lines joined, lines
                    # without a colon skipped.
                    allow_obsolete_multiline_headers_in_responses=True,
                    ignore_invalid_headers_in_responses=True,
                    allow_spaces_after_header_name_in_responses=True,
                ),
                redirect=redirect.Policy.none(),
                gzip=False,
                brotli=False,
                deflate=False,
                zstd=False,
                no_proxy=True,
                cookie_store=False,
                referer=False,
                connect_timeout=_seconds(self.timeouts.connect + self.timeouts.tls),
                pool_max_idle_per_host=1,
                dns_options=dns,
            )
        return self._wreq

    async def connect(self) -> None:
        """wreq connects on the first request; nothing to do ahead of it."""

    async def request(
        self, method: str, target: str, extra_headers: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        try:
            request_bytes(method, target, b"")  # the same refusal of unsafe targets
            verb = getattr(Method, method)
        except (ValueError, AttributeError) as exc:
            raise map_exception(ValueError(str(exc)), "request") from exc
        fresh = self._fresh
        phase_limit = self.timeouts.read
        if fresh:
            # wreq's connect_timeout (connect + tls) fires first when TCP or TLS stalls;
            # what the connection did not use of it is left to the response.
            phase_limit += self.timeouts.connect + self.timeouts.tls
        budget = self._budget(phase_limit)
        headers: dict[str, str] | wreq.HeaderMap = self._headers
        if extra_headers:
            names = {k.lower() for k, _ in extra_headers}
            if len(names) == len(extra_headers) and not names & _BASE_NAMES:
                headers = {**self._headers, **dict(extra_headers)}
            else:  # a repeated name: every line is sent, as the default client does
                headers = wreq.HeaderMap()
                for key, value in (*self._headers.items(), *extra_headers):
                    headers.append(key, value)
        self._got = 0
        connected = not fresh
        try:
            async with asyncio.timeout(budget):
                answer = await self._client().request(
                    verb, self._base + target, headers=headers, default_headers=False
                )
                connected = True
                if fresh:
                    self.connections += 1
                    self._fresh = False
                if self.use_tls and self.tls is None and answer.tls_info is not None:
                    der = answer.tls_info.peer_certificate()
                    self.tls = _tls_record(bytes(der) if der is not None else None)
                response = await self._read(answer, method)
        except Exception as exc:
            error = _map(
                exc, connected=connected, got=self._got, max_headers=self.limits.max_headers
            )
            connect_failed = isinstance(exc, wreq.ConnectionError) and not connected
            self.abort()
            if self.use_tls and self.tls is None and not connect_failed:
                await self._certificate_only()
            raise error from exc
        self.requests += 1
        if not response.keep_alive:
            self.close()
        return response

    async def _read(self, answer: wreq.Response, method: str) -> Response:
        """Our Response, with the body read up to the cap (`_got` counts body bytes)."""
        status = answer.status.as_int()
        version = "HTTP/1.0" if answer.version == Version.HTTP_10 else "HTTP/1.1"
        headers = [
            (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1").strip())
            for k, v in answer.headers
        ]
        conn = ""
        framed = False
        for key, value in headers:
            if key == "connection":
                conn = value.lower()
            elif key in ("content-length", "transfer-encoding"):
                framed = True
        keep_alive = ("close" not in conn) if version == "HTTP/1.1" else ("keep-alive" in conn)
        cap = self.limits.max_body_bytes
        parts: list[bytes] = []
        got = 0
        truncated = False
        if not (method == "HEAD" or status in _NO_BODY_STATUS or 100 <= status < 200):
            if not framed:
                keep_alive = False  # read until close
            async with answer.stream() as stream:
                async for chunk in stream:
                    if not isinstance(chunk, memoryview):
                        continue  # trailers
                    data = bytes(chunk)
                    if got + len(data) >= cap:
                        parts.append(data[: cap - got])
                        truncated = got + len(data) > cap
                        got = cap
                        break
                    parts.append(data)
                    got += len(data)
                    self._got = got
            if got >= cap and not truncated:
                truncated = answer.content_length is None or answer.content_length > cap
        if truncated:
            keep_alive = False
        reason = str(answer.status).partition(" ")[2]  # hyper keeps no reason phrase
        body = b"".join(parts)
        return Response(version, status, reason, headers, body, truncated, keep_alive)

    async def _certificate_only(self) -> None:
        """One handshake with Python's ssl to keep the certificate of a host that
        finished TLS with wreq but gave no response; any failure leaves `tls` unset."""
        try:
            budget = self._budget(self.timeouts.connect + self.timeouts.tls)
        except ProbeError:
            return
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(budget):
                _, writer = await asyncio.open_connection(
                    self.ip,
                    self.port,
                    ssl=client_context(),
                    server_hostname=self.sni or "",
                    ssl_handshake_timeout=budget + 1.0,
                )
                self.tls = session_info(writer.get_extra_info("ssl_object"))
        except Exception:  # noqa: S110 - best effort: the request's own error is recorded
            pass
        finally:
            if writer is not None:
                writer.transport.abort()

    def close(self) -> None:
        """Close the wreq client (its pending requests are cancelled) and drop it: its
        pool, so this host's connection, goes with it."""
        client, self._wreq = self._wreq, None
        if client is not None:
            client.close()
        self._fresh = True

    def abort(self) -> None:
        self.close()


__all__ = ["WreqHttpClient"]
