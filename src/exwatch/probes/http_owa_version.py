"""`http-owa-version`: endpoints that often carry X-OWA-Version (the four-part build).

/owa/service and /autodiscover/autodiscover.xml answer without authentication (401 or an
error page) and, depending on version and proxy, send the header /owa/ did not.
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-owa-version"
PATHS = ("/owa/service", "/autodiscover/autodiscover.xml")


async def run(ctx: ProbeContext) -> None:
    for path in PATHS:
        if ctx.has_su_build():  # the security-update level is known: spare the requests
            return
        await ctx.fetch(ID, "GET", path)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stage=Stage.EXCHANGE,
    requests=tuple(f"GET {p}" for p in PATHS),
    description="X-OWA-Version on OWA service and Autodiscover endpoints",
    run=run,
)
