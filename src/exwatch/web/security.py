"""What every response carries and every request must show.

- Security headers on every response: a strict Content-Security-Policy (scripts and styles
  only from this server's /static/, no inline script, no plugins, no framing, forms only
  to itself), nosniff, no referrer, no framing, same-origin isolation.
- Only GET and HEAD: the interface is read-only.
- The Host header must name this server (a DNS-rebinding page cannot read a loopback UI).
- Credentials when any are configured (always when bound off loopback): HTTP Basic or a
  bearer token; a browser gets Basic's login prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exwatch.web.auth import Credentials

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]


class Guard:
    """ASGI middleware: methods, Host, credentials, security headers."""

    def __init__(self, app: ASGIApp, *, credentials: Credentials, hosts: Iterable[str]) -> None:
        self.app = app
        self.credentials = credentials
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k not in dict(HEADERS)]
                message["headers"] = headers + HEADERS
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "").lower()
        if self.hosts and _host_only(host) not in self.hosts:
            await _refuse(with_headers, 421, "this server does not answer for that Host name")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _refuse(with_headers, 405, "read-only: only GET and HEAD", allow=True)
            return
        if self.credentials and self.credentials.check(headers.get("authorization")) is None:
            await _refuse(with_headers, 401, "authentication required", challenge=True)
            return
        await self.app(scope, receive, with_headers)


def _host_only(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _refuse(
    send: Send, status: int, message: str, *, challenge: bool = False, allow: bool = False
) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if challenge:
        headers.append((b"www-authenticate", b'Basic realm="exwatch", charset="UTF-8"'))
    if allow:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def allowed_hosts(bind: str, port: int, extra: Iterable[str]) -> list[str]:
    """Host names a browser may use to reach this server."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if bind not in ("0.0.0.0", "::"):  # noqa: S104 - compared, not bound
        names.add(f"[{bind}]" if ":" in bind else bind)
    names.update(h.strip().lower() for h in extra if h.strip())
    return sorted(names)


__all__ = ["CSP", "HEADERS", "Guard", "allowed_hosts"]
