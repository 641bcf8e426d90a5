"""`http-ecp-exporttool`: the eDiscovery export tool's ClickOnce manifest (2013 and later).

Its assemblyIdentity carries the four-part build (security-update level).  ECP is often
not published externally; a 404 or 403 is an ordinary outcome, not an error (and where it
came from Exchange itself, `http-ecp-cu-folder` tries the CU's own folder).
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-ecp-exporttool"
TOOL = "exporttool/microsoft.exchange.ediscovery.exporttool.application"
PATH = f"/ecp/Current/{TOOL}"


async def run(ctx: ProbeContext) -> None:
    if ctx.has_su_build() or ctx.fetched_target(PATH):  # nothing more to learn here
        return
    if ctx.only_lines("2003", "2007", "2010"):
        return  # the export tool came with Exchange 2013
    await ctx.fetch(ID, "GET", PATH)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.EXCHANGE,),
    requests=(f"GET {PATH}",),
    description="eDiscovery export tool manifest: four-part build",
    run=run,
)
