"""A TCP relay that adds a round-trip time, for kernels without `tc netem`.

    python delay_relay.py SPEC.json        (prints "ready" once every address is bound)

SPEC: {"rtt": 0.2, "jitter": 0.1, "listen_port": 20443, "upstream_port": 19443,
       "addresses": ["127.16.0.1", ...]}

For each address it listens on (address, listen_port) and forwards every connection to
(address, upstream_port), holding each chunk for a one-way delay of rtt/2 (times 1 +/- jitter)
in each direction, in order.  The kernel completes the client's connect at once, so the
relay charges the connection's own round trip on top: the upstream connection is opened,
and the client's first bytes delivered, only 1.5 RTT after accept - where a real network
would deliver them.  Then a TLS handshake and each HTTP exchange pay real round trips.
Resets and closes are passed on after the same delay (a reset as a reset: SO_LINGER 0).
Limits: the scanner's connect() itself completes at once (its connect timeout never sees
the delay; TLS and read timeouts do), and there is no bandwidth limit or backpressure -
the lab's responses are small.

Test infrastructure, not product code.  It runs in its own process so that it does not
share the scanner's event loop, and only inside the test's own network namespace.
On SIGTERM it prints one JSON line of counters (connections, peak open) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import signal
import socket
import struct
import sys
from collections import deque
from pathlib import Path
from typing import Any, cast

from exwatch.lab.process import die_with_parent, raise_fd_limit

# What a direction's queue holds besides data: a half-close, a close, a reset.
EOF, CLOSE, RESET = "eof", "close", "reset"
Item = bytes | str


class _Counters:
    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.peak_open = 0
        self.upstream_failed = 0
        self.resets = 0


class _Direction:
    """Bytes travelling one way, each released no earlier than its delay and in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, relay: Relay) -> None:
        self.loop = loop
        self.relay = relay
        self.queue: deque[tuple[float, Item]] = deque()
        self.last = 0.0
        self.sink: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.not_before = 0.0

    def push(self, item: Item) -> None:
        now = self.loop.time()
        release = max(now + self.relay.one_way(), self.last + 1e-6, self.not_before)
        self.last = release
        self.queue.append((release, item))
        self._arm()

    def _arm(self) -> None:
        if self.timer is None and self.queue and self.sink is not None:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)

    def attach(self, sink: asyncio.Transport) -> None:
        self.sink = sink
        self._arm()

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = None
        sink = self.sink
        if sink is None:
            return
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now + 0.0005:
            _, item = self.queue.popleft()
            if sink.is_closing():
                self.queue.clear()
                return
            if isinstance(item, bytes):
                sink.write(item)
            elif item == EOF:
                if sink.can_write_eof():
                    sink.write_eof()
            elif item == RESET and sink.get_write_buffer_size():
                # A reset would drop what is still buffered: send that first.
                self.queue.appendleft((now + 0.01, item))
                break
            else:
                if item == RESET:
                    _reset(sink)
                    self.relay.counters.resets += 1
                else:
                    sink.close()
                self.queue.clear()
                return
        self._arm()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


def _reset(transport: asyncio.Transport) -> None:
    """Close with RST rather than FIN, as the real peer did."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Upstream(asyncio.Protocol):
    def __init__(self, pair: _ClientSide) -> None:
        self.pair = pair

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        transport = cast(asyncio.Transport, transport)
        self.pair.upstream = transport
        self.pair.to_server.attach(transport)

    def data_received(self, data: bytes) -> None:
        self.pair.to_client.push(data)

    def eof_received(self) -> bool:
        pair = self.pair
        pair.server_eof = True
        if pair.client_eof:  # both halves closed: close both sockets
            pair.to_client.push(CLOSE)
            return False
        pair.to_client.push(EOF)
        return True  # keep the other half open until the client closes

    def connection_lost(self, exc: Exception | None) -> None:
        # A reset from the server reaches the client as a reset; a close as a close.
        self.pair.to_client.push(RESET if exc is not None else CLOSE)


class _ClientSide(asyncio.Protocol):
    def __init__(self, relay: Relay, address: str) -> None:
        self.relay = relay
        self.address = address
        loop = relay.loop
        self.to_server = _Direction(loop, relay)
        self.to_client = _Direction(loop, relay)
        self.upstream: asyncio.Transport | None = None
        self.client_eof = self.server_eof = False
        self.client: asyncio.Transport | None = None
        self.dial: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.client = transport
        self.to_client.attach(transport)
        c = self.relay.counters
        c.accepted += 1
        c.open += 1
        c.peak_open = max(c.peak_open, c.open)
        # The connect's own round trip, then the first bytes' one-way trip: that is when
        # the server would see them (and when a server that speaks first is heard).
        opened = self.relay.loop.time() + 3 * self.relay.one_way()
        self.to_server.not_before = opened
        self.dial = self.relay.loop.call_at(opened, self._dial)

    def _dial(self) -> None:
        self.dial = None
        task = self.relay.loop.create_task(self._connect())
        self.relay.tasks.add(task)
        task.add_done_callback(self.relay.tasks.discard)

    async def _connect(self) -> None:
        try:
            await self.relay.loop.create_connection(
                lambda: _Upstream(self), self.address, self.relay.upstream_port
            )
        except OSError:
            self.relay.counters.upstream_failed += 1
            self.to_client.push(RESET)

    def data_received(self, data: bytes) -> None:
        self.to_server.push(data)

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.server_eof:
            self.to_server.push(CLOSE)
            return False
        self.to_server.push(EOF)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.counters.open -= 1
        if self.dial is not None:
            self.dial.cancel()
            self.dial = None
            self.to_client.cancel()
            # Gone before its connection would even have reached the server.
            self.to_server.cancel()
            return
        self.to_client.cancel()
        # Delivered after its delay; a connect still under way gets it on arrival.
        self.to_server.push(RESET if exc is not None else CLOSE)


class Relay:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.rtt = float(spec["rtt"])
        self.jitter = float(spec.get("jitter", 0.0))
        self.listen_port = int(spec["listen_port"])
        self.upstream_port = int(spec["upstream_port"])
        self.addresses: list[str] = list(spec["addresses"])
        self.counters = _Counters()
        self.tasks: set[asyncio.Task[None]] = set()
        self.loop = asyncio.get_running_loop()
        self._rng = random.Random(spec.get("seed", 0))  # noqa: S311 (jitter, not secrets)

    def one_way(self) -> float:
        return self.rtt / 2 * (1 + self._rng.uniform(-self.jitter, self.jitter))

    async def serve(self) -> None:
        servers = []
        for address in self.addresses:
            server = await self.loop.create_server(
                functools.partial(_ClientSide, self, address),
                address,
                self.listen_port,
                backlog=4096,
                reuse_address=True,
            )
            servers.append(server)
        stop = asyncio.Event()
        self.loop.add_signal_handler(signal.SIGTERM, stop.set)
        self.loop.add_signal_handler(signal.SIGINT, stop.set)
        print("ready", flush=True)
        await stop.wait()
        for server in servers:
            server.close()
        c = self.counters
        report = {
            "accepted": c.accepted,
            "peak_open": c.peak_open,
            "open_at_exit": c.open,
            "upstream_failed": c.upstream_failed,
            "resets_passed_on": c.resets,
        }
        print(json.dumps(report), flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: delay_relay.py SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    die_with_parent()  # the relay must not outlive the scenario that started it, even a killed one
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.Runner()
    else:
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)

    async def run() -> None:
        await Relay(spec).serve()

    with runner:
        runner.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
