"""A real exwatch web server (uvicorn) on a free loopback port, in a thread of the test."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from exwatch.web import create_app
from exwatch.web.auth import Credentials
from tests.lab.running import free_port


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Running:
    base: str

    def get(
        self, path: str, *, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> Answer:
        url = self.base + path  # always http://127.0.0.1:PORT
        request = urllib.request.Request(url, headers=headers or {}, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
                return Answer(response.status, {k.lower(): v for k, v in response.headers.items()},
                              response.read())  # fmt: skip
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


@contextlib.contextmanager
def serving(
    db: str, *, credentials: Credentials | None = None, hosts: list[str] | None = None
) -> Iterator[Running]:
    port = free_port()
    app = create_app(db, credentials=credentials, hosts=hosts)
    # h11, asyncio and no websockets named outright: "auto" probes optional modules.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        http="h11", loop="asyncio", ws="none", lifespan="on",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    try:
        yield Running(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
