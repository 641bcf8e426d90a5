"""`http-ecp-exporttool`: the eDiscovery export tool's ClickOnce manifest (2013 and later).

Its assemblyIdentity carries the four-part build (security-update level).  ECP is often
not published externally; a 404 or 403 is an ordinary outcome, not an error.
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-ecp-exporttool"
PATH = "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application"


async def run(ctx: ProbeContext) -> None:
    if ctx.has_su_build():  # the security-update level is known: spare the request
        return
    await ctx.fetch(ID, "GET", PATH)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stage=Stage.EXCHANGE,
    requests=(f"GET {PATH}",),
    description="eDiscovery export tool manifest: four-part build",
    run=run,
)
