"""HTTPS sites on loopback for the security.txt tests: a route table, a log of requests."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.notify.pki import TestCA

Route = tuple[int, dict[str, str], bytes]  # status, headers, body


@dataclass
class Site:
    port: int
    routes: dict[tuple[str, str], Route]  # (Host without port, path) -> answer
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # host, path, UA


@contextmanager
def https_site(
    ca: TestCA, names: list[str], routes: dict[tuple[str, str], Route]
) -> Iterator[Site]:
    issued = ca.issue(f"site-{names[0]}", names)
    site = Site(0, routes)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            site.requests.append((host, self.path, self.headers.get("User-Agent") or ""))
            status, headers, body = site.routes.get((host, self.path), (404, {}, b"not found"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(issued.cert), str(issued.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
