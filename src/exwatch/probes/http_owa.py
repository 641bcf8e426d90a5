"""`http-owa`: GET /owa/ and follow its redirect to the logon page on the same host.

Exchange answers /owa/ with a redirect to /owa/auth/logon.aspx?url=...&reason=0 (often with
X-OWA-Version and X-FEServer); the logon page carries the build in its static paths.  Only
redirects to /owa/auth/ on the same scheme, host and port are followed, so a non-Exchange
host costs exactly one request and the scanner never wanders to other hosts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-owa"
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


async def run(ctx: ProbeContext) -> None:
    response = await ctx.fetch(ID, "GET", "/owa/")
    for _ in range(MAX_REDIRECTS):
        if response.status not in _REDIRECT_STATUS:
            return
        location = response.header("location")
        if location is None:
            return
        target = same_host_target(location, ctx.host, ctx.client.port, ctx.client.use_tls)
        if target is None:
            return
        response = await ctx.fetch(ID, "GET", target)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stage=Stage.FIRST,
    requests=("GET /owa/", "GET <same-host redirect under /owa/auth/>"),
    description="OWA entry point and logon page: markers, static-path build, headers",
    run=run,
)
