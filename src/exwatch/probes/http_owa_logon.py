"""`http-owa-logon`: GET /owa/auth/logon.aspx, the first request to every host.

The logon page carries the build in its static paths and, on most servers, X-OWA-Version
and X-FEServer; asking for it directly spares the /owa/ redirect a browser would follow
(one request per Exchange host).  A redirect is followed only to /owa/auth/ on the same
scheme, host and port, so a non-Exchange host costs exactly one request and the scanner
never wanders to other hosts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from exwatch.net.http import Response
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-owa-logon"
PATH = "/owa/auth/logon.aspx"
MAX_REDIRECTS = 2
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


def same_host_target(location: str, host: str, port: int, tls: bool) -> str | None:
    """The request target for `location` when it stays on this scheme/host/port under
    /owa/auth/; None otherwise (including anything unparsable)."""
    try:
        parts = urlsplit(location.strip())
        if parts.scheme or parts.netloc:
            if parts.scheme.lower() != ("https" if tls else "http"):
                return None
            default = 443 if tls else 80
            if (parts.hostname or "").lower() != host.lower().strip("[]"):
                return None
            if (parts.port or default) != port:
                return None
    except ValueError:
        return None
    path = parts.path
    if not path.lower().startswith("/owa/auth/"):
        return None
    return f"{path}?{parts.query}" if parts.query else path


async def fetch_following(ctx: ProbeContext, probe: str, path: str) -> Response:
    """GET `path` and follow up to MAX_REDIRECTS same-host redirects under /owa/auth/."""
    response = await ctx.fetch(probe, "GET", path)
    for _ in range(MAX_REDIRECTS):
        if response.status not in _REDIRECT_STATUS:
            break
        location = response.header("location")
        if location is None:
            break
        target = same_host_target(location, ctx.host, ctx.client.port, ctx.client.use_tls)
        if target is None or ctx.fetched_target(target):
            break
        response = await ctx.fetch(probe, "GET", target)
    return response


async def run(ctx: ProbeContext) -> None:
    await fetch_following(ctx, ID, PATH)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.FIRST,),
    requests=(f"GET {PATH}", "GET <same-host redirect under /owa/auth/>"),
    description="OWA logon page: markers, static-path build, headers",
    run=run,
)
