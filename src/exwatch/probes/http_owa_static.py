"""`http-owa-static`: /owa/auth/errorFE.aspx, when Exchange is recognised but no build was
read (a custom logon page, version headers stripped by a proxy).

The front end's error page is served anonymously and is rarely customised; its static
paths (/owa/auth/<15.x.y>/themes/...) carry the CU like the stock logon page's.
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-owa-static"
PATHS = ("/owa/auth/errorFE.aspx",)


async def run(ctx: ProbeContext) -> None:
    if ctx.owa_closed() or ctx.only_lines("2003", "2007", "2010"):
        return  # errorFE.aspx is the 2013+ front end's page, under /owa/
    for path in PATHS:
        if any(s.build is not None for s in ctx.sightings):
            return
        if not ctx.fetched_target(path):
            await ctx.fetch(ID, "GET", path)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.EXCHANGE,),
    requests=tuple(f"GET {p} (only while no build is known)" for p in PATHS),
    description="Anonymous OWA pages whose static paths carry the CU",
    run=run,
)
