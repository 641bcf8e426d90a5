"""Route sets that imitate an Exchange front-end closely enough for the probes."""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable

from exwatch.ntlm import build_challenge

from .conftest import Canned, Request, Route, response

EXPORTTOOL = "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application"
NTLM_B64 = base64.b64encode(build_challenge()).decode("ascii")  # Windows Server 2019
_PAGE_BUILD = re.compile(r"/owa/(?:auth/)?(\d+)\.(\d+)\.")
# A Windows release each product line runs on (a challenge naming another one makes the
# host implausible, as it should).
_WINDOWS = {
    (15, 2): (10, 0, 17763),
    (15, 1): (6, 3, 9600),
    (15, 0): (6, 3, 9600),
    (14, 3): (6, 1, 7601),
}
_IIS = {(10, 0): "10.0", (6, 3): "8.5", (6, 1): "7.5"}


def _windows(logon: Canned) -> tuple[int, int, int]:
    m = _PAGE_BUILD.search(logon.body.decode("latin-1"))
    key = (int(m.group(1)), int(m.group(2))) if m else (15, 2)
    return _WINDOWS.get(key, (10, 0, 17763))


def challenge_for(logon: Canned) -> str:
    """An NTLM challenge from a Windows release the logon page's product runs on."""
    return base64.b64encode(build_challenge(os_version=_windows(logon))).decode("ascii")


def server_for(logon: Canned) -> str:
    """The Server header of that Windows release's IIS."""
    return f"Microsoft-IIS/{_IIS[_windows(logon)[:2]]}"


def manifest(version: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<asmv1:assembly manifestVersion="1.0" xmlns:asmv1="urn:schemas-microsoft-com:asm.v1">\n'
        f'  <assemblyIdentity name="microsoft.exchange.ediscovery.exporttool.application" '
        f'version="{version}" publicKeyToken="b1d1a6c45aa418ce" language="neutral" '
        'processorArchitecture="msil" />\n</asmv1:assembly>\n'
    )


def exchange_routes(
    logon: Canned,
    *,
    owa_version: str | Callable[[], str] | None,
    feserver: str | Callable[[], str] | None = "EXCH01",
    exporttool: str | None = None,
    ntlm: str | None = "",
    close_each: bool = False,
) -> dict[str, Route]:
    """/owa/ redirects to the logon page; EWS answers NTLM; headers as configured.

    `owa_version` and `feserver` may be callables (a load balancer answering from a
    different server each time).  `ntlm` is the base64 challenge EWS sends ("": one from a
    Windows release the page's product runs on; None: no NTLM)."""
    if ntlm == "":
        ntlm = challenge_for(logon)
    server = server_for(logon)

    def front() -> list[tuple[str, str]]:
        headers = [("Server", server), ("X-Powered-By", "ASP.NET")]
        if owa_version is not None:
            headers.append(
                ("X-OWA-Version", owa_version if isinstance(owa_version, str) else owa_version())
            )
        if feserver is not None:
            headers.append(("X-FEServer", feserver if isinstance(feserver, str) else feserver()))
        if close_each:
            headers.append(("Connection", "close"))
        return headers

    def owa(req: Request) -> bytes:
        host = req.headers.get("host", "")
        loc = f"https://{host}/owa/auth/logon.aspx?url=https%3a%2f%2f{host}%2fowa%2f&reason=0"
        return response(302, [*front(), ("Location", loc)], reason="Found")

    def logon_page(req: Request) -> bytes:
        drop = ("x-owa-version", "x-feserver", "server", "x-powered-by")
        extra = front()
        return logon.encode(extra=extra, drop=drop)

    def manifest_route(req: Request) -> bytes:
        if exporttool is None:
            return response(404, front(), "not found", reason="Not Found")
        return response(
            200, [*front(), ("Content-Type", "application/x-ms-application")], manifest(exporttool)
        )

    def ews(req: Request) -> bytes:
        auth = req.headers.get("authorization", "")
        challenge = [("WWW-Authenticate", "Negotiate")]
        if ntlm is not None and auth.startswith("NTLM "):
            challenge = [("WWW-Authenticate", f"NTLM {ntlm}"), *challenge]
        return response(401, [*front(), *challenge], "", reason="Unauthorized")

    def unauthorized(req: Request) -> bytes:
        return response(
            401, [*front(), ("WWW-Authenticate", "Negotiate")], "", reason="Unauthorized"
        )

    return {
        "/owa/": owa,
        "/owa/auth/logon.aspx": logon_page,
        EXPORTTOOL: manifest_route,
        "/EWS/Exchange.asmx": ews,
        "/owa/service": unauthorized,
        "/autodiscover/autodiscover.xml": unauthorized,
    }


def alternating(*values: str) -> Callable[[], str]:
    cycle = itertools.cycle(values)
    return lambda: next(cycle)
