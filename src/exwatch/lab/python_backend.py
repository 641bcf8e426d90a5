"""The lab's pure-Python backend: serves the route table over TLS where nginx is missing.

Run by the lab as a child process: `python -m exwatch.lab.python_backend SPEC.json`,
where SPEC holds {"port", "key", "common", "pid_file", "sites": [Site as a dict]}.  It
prints `ready N` once every address is bound and runs until SIGTERM.

It answers as the nginx config rendered from the same `routes` data does: nginx's
location matching, URI normalisation, `$variable` expansion, status lines, built-in
pages and header order.  One listening socket per host; HTTP/1.1 keep-alive; request
heads, bodies and pipelined replies are bounded so a hostile client cannot make it grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import os
import re
import secrets
import signal
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from exwatch.lab import routes
from exwatch.lab.plan import TLS12, TLS13
from exwatch.lab.process import raise_fd_limit
from exwatch.lab.routes import Layout, Location, Site

MAX_LINE = 8 * 1024  # nginx large_client_header_buffers 4 8k
MAX_HEAD = 4 * MAX_LINE
MAX_BODY = 1024 * 1024  # client_max_body_size 1m
HEADER_TIMEOUT = 60.0  # client_header_timeout (also bounds the TLS handshake)
MAX_REQUESTS = 1000  # keepalive_requests
MAX_REDIRECTS = 10  # internal redirects (try_files, index, error_page)
WRITE_HIGH = 256 * 1024  # stop reading a client that does not read its replies

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Not Allowed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    500: "Internal Server Error",
}
_TITLES = {302: "302 Found"}  # nginx's built-in page names 302 so, unlike its status line
_VAR = re.compile(r"\$(\w+)")
_METHOD = re.compile(rb"[A-Z_-]+")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_AUTH_KINDS = [(re.compile(p, re.IGNORECASE), kind) for p, kind in routes.AUTH_KINDS]
_RULES = [(rule, re.compile(rule.pattern, re.IGNORECASE)) for rule in routes.RULES]
ABORT = 444  # nginx's "close the connection without an answer"


def builtin_page(status: int, title: str | None = None, detail: str | None = None) -> bytes:
    """nginx's own page for a status (with `server_tokens off`)."""
    head = _TITLES.get(status, f"{status} {REASONS.get(status, '')}")
    extra = f"<center>{detail}</center>\r\n" if detail else ""
    return (
        f"<html>\r\n<head><title>{title or head}</title></head>\r\n"
        f"<body>\r\n<center><h1>{head}</h1></center>\r\n{extra}"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


class BadRequest(Exception):
    def __init__(self, status: int = 400, title: str | None = None, detail: str | None = None):
        super().__init__(status)
        self.status = status
        self.body = builtin_page(status, title, detail)


def normalize_uri(target: bytes) -> str:
    """The decoded, dot-free, slash-merged path nginx matches locations against."""
    if target[:1] != b"/":
        # An absolute URI ("https://host/path") names the path after the authority.
        m = re.fullmatch(rb"https?://[^/?#]*(/[^#]*)?", target, re.IGNORECASE)
        if m is None:
            raise BadRequest()
        target = m.group(1) or b"/"
    raw = target.split(b"?", 1)[0]
    if re.search(rb"%(?![0-9A-Fa-f]{2})", raw):
        raise BadRequest()
    path = unquote_to_bytes(raw)
    if b"\0" in path:
        raise BadRequest()
    out: list[bytes] = []
    parts = path.split(b"/")
    for part in parts[1:]:
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not out:
                raise BadRequest()  # above the root
            out.pop()
        else:
            out.append(part)
    trailing = path.endswith(b"/") or parts[-1] in (b".", b"..")
    text = "/" + "/".join(p.decode("latin-1") for p in out)
    return text + "/" if trailing and text != "/" else text


def valid_host(host: str) -> bool:
    """nginx's check of the Host header (ngx_http_validate_host), simplified."""
    if not host or ".." in host or "/" in host or "\\" in host:
        return False
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in host):
        return False
    return not host.startswith(":")


def find_location(layout: Layout, uri: str) -> Location | None:
    """nginx's order: exact match; else the longest prefix, unless it is `^~` the first
    matching regex wins over it."""
    prefix: Location | None = None
    for loc in layout.locations:
        if loc.match == "=" and loc.pattern == uri:
            return loc
        if (
            loc.match in ("", "^~")
            and uri.startswith(loc.pattern)
            and (prefix is None or len(loc.pattern) > len(prefix.pattern))
        ):
            prefix = loc
    if prefix is not None and prefix.match == "^~":
        return prefix
    for loc in layout.locations:
        if loc.match == "~*" and _regex(loc.pattern).search(uri):
            return loc
    return prefix


_REGEXES: dict[str, re.Pattern[str]] = {}


def _regex(pattern: str) -> re.Pattern[str]:
    rx = _REGEXES.get(pattern)
    if rx is None:
        rx = _REGEXES[pattern] = re.compile(pattern, re.IGNORECASE)
    return rx


def content_type(uri: str) -> str:
    name = uri.rsplit("/", 1)[-1]
    if "." in name:
        return routes.MIME_TYPES.get(name.rsplit(".", 1)[1].lower(), routes.DEFAULT_TYPE)
    return routes.DEFAULT_TYPE


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    etag: str
    last_modified: str


class Files:
    """Static files of the document roots, read once (they do not change while serving)."""

    LIMIT = 10_000  # entries, misses included: arbitrary paths must not grow it for ever

    def __init__(self) -> None:
        self.cache: dict[str, StaticFile | None] = {}

    def get(self, path: str) -> StaticFile | None:
        if path in self.cache:
            return self.cache[path]
        found: StaticFile | None = None
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if not os.path.isdir(path):
                with open(path, "rb") as fh:
                    body = fh.read()
                mtime = int(st.st_mtime)
                found = StaticFile(
                    body,
                    f'"{mtime:x}-{len(body):x}"',
                    email.utils.formatdate(mtime, usegmt=True),
                )
        if len(self.cache) >= self.LIMIT:
            self.cache.clear()
        self.cache[path] = found
        return found

    @staticmethod
    def is_dir(path: str) -> bool:
        return os.path.isdir(path)


@dataclass(slots=True)
class Request:
    method: str
    uri: str
    version: str
    headers: dict[str, str]
    keep_alive: bool
    body_length: int
    chunked: bool
    target: str = ""  # the request target as sent (nginx's $request_uri)


def parse_head(head: bytes) -> Request:
    """Parse a request head (without the blank line); raise BadRequest like nginx would."""
    lines = head.split(b"\n")
    request_line = lines[0].rstrip(b"\r")
    if len(request_line) > MAX_LINE:
        raise BadRequest(414)
    parts = request_line.split(b" ")
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]):
        raise BadRequest()
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise BadRequest()
    uri = normalize_uri(target)
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if len(line) > MAX_LINE:
            raise BadRequest(
                400, "400 Request Header Or Cookie Too Large", "Request Header Or Cookie Too Large"
            )
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            continue  # nginx ignores what is not a header
        key = name.decode("latin-1").lower()
        if key == "host" and key in headers:
            raise BadRequest()
        headers.setdefault(key, value.strip().decode("latin-1"))
    v11 = version == b"HTTP/1.1"
    if v11 and "host" not in headers:
        raise BadRequest()
    if "host" in headers and not valid_host(headers["host"]):
        raise BadRequest()
    conn = headers.get("connection", "").lower()
    keep = "close" not in conn if v11 else "keep-alive" in conn
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = 0
    if "content-length" in headers and not chunked:
        text = headers["content-length"]
        if not text.isdigit() or len(text) > 18:
            raise BadRequest()
        length = int(text)
    return Request(
        method.decode(), uri, version.decode(), headers, keep, length, chunked,
        target.decode("latin-1"),
    )  # fmt: skip


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "text/html"
    location: str | None = None
    static: StaticFile | None = None
    error_page: StaticFile | None = None
    added: tuple[tuple[str, str], ...] = ()
    server: str | None = None  # a location's own Server header


class Host:
    """One listening address: its site, layout and variable sets."""

    def __init__(self, site: Site, layout: Layout, files: Files, port: int) -> None:
        self.site = site
        self.layout = layout
        self.files = files
        self.port = port
        self.server = site.server or "nginx"
        self.native = not site.server  # no Server header of its own: nginx's, first

    def answer(self, req: Request, variant: int) -> Response:
        vars_ = dict(self.site.variants[variant])
        vars_["lab_host"] = req.headers.get("host") or f"{self.site.ip}:{self.port}"
        auth = req.headers.get("authorization", "")
        kind = next((k for rx, k in _AUTH_KINDS if rx.search(auth)), "none")
        vars_["lab_auth1"] = self._expand(routes.AUTH_FIRST[kind], vars_)
        vars_["lab_auth2"] = self._expand(routes.AUTH_SECOND[kind], vars_)
        vars_["request_id"] = secrets.token_hex(16)
        for rule, rx in _RULES:
            if vars_.get(rule.gate) != "1":
                continue
            text = req.headers.get("cookie", "") if rule.input == "cookie" else req.target
            if (rx.match(text) if rule.anchored else rx.search(text)) is None:
                continue
            if rule.abort:
                return Response(ABORT)
            return self._route(req, rule.path, vars_, external=False, depth=0)
        return self._route(req, req.uri, vars_, external=True, depth=0)

    @staticmethod
    def _expand(template: str, vars_: dict[str, str]) -> str:
        return _VAR.sub(lambda m: vars_.get(m.group(1), ""), template)

    def _route(
        self, req: Request, uri: str, vars_: dict[str, str], *, external: bool, depth: int
    ) -> Response:
        if depth > MAX_REDIRECTS:
            return Response(500, builtin_page(500))
        loc = find_location(self.layout, uri)
        if loc is None or (loc.internal and external):
            return self._not_found(req, vars_, (), depth)
        added = tuple(
            (name, value)
            for name, template in loc.headers
            if (value := self._expand(template, vars_))
        )
        server = None if loc.server is None else self._expand(loc.server, vars_)
        resp = self._answer(req, uri, loc, vars_, added, depth)
        if server is not None and resp.error_page is None:
            resp.server = server  # as headers_more in the location (not after error_page)
        return resp

    def _answer(
        self,
        req: Request,
        uri: str,
        loc: Location,
        vars_: dict[str, str],
        added: tuple[tuple[str, str], ...],
        depth: int,
    ) -> Response:
        if req.body_length > MAX_BODY:
            return Response(413, builtin_page(413), added=added)
        if loc.status is not None and loc.builtin:
            return Response(loc.status, builtin_page(loc.status), added=added)
        if loc.status is not None:
            text = self._expand(loc.text, vars_)
            if loc.status in (301, 302):
                return Response(loc.status, builtin_page(loc.status), location=text, added=added)
            return Response(
                loc.status, text.encode(), content_type(uri) if text else None, added=added
            )
        root = self._expand(loc.root if loc.root is not None else self.layout.root, vars_)
        for candidate in loc.try_files[:-1]:
            # As nginx: a candidate written with a trailing slash tests for a directory,
            # any other for a file (so "$uri" of "/owa/auth/" finds nothing).
            test_dir = candidate.endswith("/") and len(candidate) > 1
            name = (candidate[:-1] if test_dir else candidate).replace("$uri", uri)
            if test_dir:
                if not Files.is_dir(root + name):
                    continue
                index = self.layout.index
                next_uri = name.rstrip("/") + "/" + (index or "")
                if index and self.files.get(root + next_uri):
                    return self._route(req, next_uri, vars_, external=False, depth=depth + 1)
                return Response(403, builtin_page(403), added=added)
            found = self.files.get(root + name)
            if found is not None:
                if req.method not in ("GET", "HEAD"):
                    return Response(405, builtin_page(405), added=added)
                return Response(200, found.body, content_type(name), static=found, added=added)
        return self._not_found(req, vars_, added, depth)

    def _not_found(
        self, req: Request, vars_: dict[str, str], added: tuple[tuple[str, str], ...], depth: int
    ) -> Response:
        page = self.layout.error_page_404
        if page is None:
            return Response(404, builtin_page(404), added=added)
        # error_page: an internal redirect (another location, its own headers), status kept.
        loc = find_location(self.layout, page)
        if loc is None or loc.root is None:
            return Response(404, builtin_page(404), added=added)
        found = self.files.get(self._expand(loc.root, vars_) + page)
        if found is None:
            return Response(404, builtin_page(404))
        return Response(404, found.body, content_type(page), error_page=found)


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


def serialize(
    resp: Response, server: str, keep_alive: bool, head_only: bool, native: bool = False
) -> bytes:
    """Status line and headers in nginx's order, then the body.  `native`: no Server
    header is set by the config, so nginx writes its own first (headers_more, which sets
    it, moves it after the built-in ones)."""
    reason = REASONS.get(resp.status, "")
    native = native and resp.server is None
    lines = [f"HTTP/1.1 {resp.status} {reason}"]
    if native:
        lines.append(f"Server: {server}")
    lines.append(f"Date: {http_date()}")
    if resp.content_type is not None:
        lines.append(f"Content-Type: {resp.content_type}")
    lines.append(f"Content-Length: {len(resp.body)}")
    if resp.static is not None:
        lines.append(f"Last-Modified: {resp.static.last_modified}")
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    if resp.location is not None:
        lines.append(f"Location: {resp.location}")
    tag = resp.static or resp.error_page
    if tag is not None:
        lines.append(f"ETag: {tag.etag}")
    if not native:
        lines.append(f"Server: {resp.server or server}")
    lines += [f"{name}: {value}" for name, value in resp.added]
    if resp.static is not None:
        lines.append("Accept-Ranges: bytes")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + resp.body


class Connection(asyncio.Protocol):
    """One client connection: read request heads, answer in order, keep alive or close."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.buf = bytearray()
        self.discard = 0  # request body bytes still to drop
        self.served = 0
        self.closing = False
        self.idle = False  # between requests of a kept-alive connection
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self._arm(HEADER_TIMEOUT)

    def _arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._timeout)

    def _timeout(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing or self.transport is None:
            return
        if self.idle:
            self.idle = False
            self._arm(HEADER_TIMEOUT)  # a request started: nginx's header timeout again
        if self.discard:
            drop = min(self.discard, len(data))
            self.discard -= drop
            data = data[drop:]
        self.buf += data
        while self.buf and not self.closing and not self.discard:
            m = _HEAD_END.search(self.buf, 0, MAX_HEAD + 4)
            if m is None:
                if len(self.buf) > MAX_HEAD:
                    self._fail(
                        BadRequest(
                            400,
                            "400 Request Header Or Cookie Too Large",
                            "Request Header Or Cookie Too Large",
                        )
                        if b"\n" in self.buf
                        else BadRequest(414)
                    )
                return
            head = bytes(self.buf[: m.start()])
            del self.buf[: m.end()]
            self._handle(head)

    def _fail(self, err: BadRequest) -> None:
        resp = Response(err.status, err.body)
        self._send(serialize(resp, self.host.server, False, False, self.host.native), close=True)

    def _handle(self, head: bytes) -> None:
        head = head.lstrip(b"\r\n")  # nginx skips empty lines before a request
        if not head:
            return
        try:
            req = parse_head(head)
        except BadRequest as err:
            self._fail(err)
            return
        except Exception:  # failure is data: a request we cannot parse is a 400
            self._fail(BadRequest())
            return
        self.served += 1
        variant = routes.variant_for_request(self.served, len(self.host.site.variants))
        try:
            resp = self.host.answer(req, variant)
        except Exception:
            resp = Response(500, builtin_page(500))
        if resp.status == ABORT:
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            return
        keep = (
            req.keep_alive
            and not req.chunked
            and resp.status not in (400, 413, 414, 500)
            and self.served < MAX_REQUESTS
        )
        head_only = req.method == "HEAD"
        data = serialize(resp, self.host.server, keep, head_only, self.host.native)
        self._send(data, close=not keep)
        if keep:
            # The body of a request we answered without reading it is dropped.
            drop = min(req.body_length, len(self.buf))
            del self.buf[:drop]
            self.discard = req.body_length - drop
            self.idle = not self.buf
            self._arm(routes.KEEPALIVE_SECONDS if self.idle else HEADER_TIMEOUT)

    def _send(self, data: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self.closing = True
            self.transport.close()


_TLS_VERSIONS = {TLS12: ssl.TLSVersion.TLSv1_2, TLS13: ssl.TLSVersion.TLSv1_3}


def server_context(cert: str, key: str, versions: tuple[str, ...]) -> ssl.SSLContext:
    """TLS as the nginx config sets it: the host's versions (its `ssl_protocols`), nginx's
    default ciphers, no resumption."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = min(_TLS_VERSIONS[v] for v in versions)
    ctx.maximum_version = max(_TLS_VERSIONS[v] for v in versions)
    ctx.set_ciphers("HIGH:!aNULL:!MD5")
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 0
    ctx.load_cert_chain(cert, key)
    return ctx


def site_from_json(data: dict[str, Any]) -> Site:
    return Site(
        data["ip"],
        data["cert"],
        data["server"],
        data["layout"],
        tuple(dict(v) for v in data["variants"]),
        tuple(data["tls_versions"]),
    )


async def serve(spec: dict[str, Any]) -> None:
    port = int(spec["port"])
    layouts = routes.all_layouts(Path(spec["common"]))
    files = Files()
    loop = asyncio.get_running_loop()
    servers = []
    for entry in spec["sites"]:
        s = site_from_json(entry)
        host = Host(s, layouts[s.layout], files, port)
        servers.append(
            await loop.create_server(
                functools.partial(Connection, host),
                host=s.ip,
                port=port,
                ssl=server_context(s.cert, spec["key"], s.tls_versions),
                ssl_handshake_timeout=HEADER_TIMEOUT,
                backlog=512,
                reuse_address=True,
            )
        )
    if spec.get("pid_file"):
        with open(spec["pid_file"], "w", encoding="utf-8") as fh:  # noqa: ASYNC230 (once, tiny)
            fh.write(f"{os.getpid()}\n")
    print(f"ready {len(servers)}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for srv in servers:
        srv.close()


def _event_loop_policy() -> None:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m exwatch.lab.python_backend SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text("utf-8"))
    raise_fd_limit()
    _event_loop_policy()
    # The lab starts this process with PR_SET_PDEATHSIG: it ends when the lab does.
    asyncio.run(serve(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
