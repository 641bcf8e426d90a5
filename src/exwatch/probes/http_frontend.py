"""`http-frontend`: GET /owa/ once more to see which front-end answers this time.

X-FEServer, X-BEServer and X-OWA-Version differ between the servers behind a load
balancer; a second look on the same address is the cheap way to catch a mixed estate
(every response of every probe is read for these headers anyway).  Load balancers that
pin a TCP connection to one server show the same front-end again: that is a known limit,
and why this probe is not in the default set (`exwatch scan --add-probe http-frontend`).
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-frontend"


async def run(ctx: ProbeContext) -> None:
    await ctx.fetch(ID, "GET", "/owa/")


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.EXCHANGE,),
    requests=("GET /owa/",),
    description="Front-end headers (X-FEServer and kin) on a second request",
    run=run,
    default=False,  # balancers mostly pin the connection: rarely worth a request per host
)
