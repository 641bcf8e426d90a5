"""The scanner's network layer: the only package that opens sockets.

`client.HttpClient` (TCP, TLS, keep-alive HTTP/1.1, per-phase and per-host deadlines),
`wire` (its connections' protocol and byte reader), `http` (bounded message reading), `tls`
(scanning context and certificate capture), `der` (certificate names and SAN read from the
encoding), `mapper.map_exception` (OS/ssl/asyncio exceptions -> ProbeError,
in one place), `dns` (the system resolver: target names, forward-confirmed PTRs), `fetch`
(security.txt) and `smtp` (notify).  tests/foundation/test_layering.py holds every other
module to no network calls.  Works on the stdlib event loop and on uvloop.
`transport.client_class` picks the client for `--transport`: this one (`python`), or
`transport_wreq.WreqHttpClient` (`wreq`, the optional `exwatch[fast]`), which has the same
interface.
"""

from exwatch.net.client import HttpClient, Timeouts
from exwatch.net.http import Limits, Response
from exwatch.net.mapper import ConnectionClosed, map_exception

__all__ = ["ConnectionClosed", "HttpClient", "Limits", "Response", "Timeouts", "map_exception"]
