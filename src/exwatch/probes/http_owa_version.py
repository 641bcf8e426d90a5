"""`http-owa-version`: /owa/service, which often carries X-OWA-Version (the four-part build).

It answers without authentication (440 or 401 on real servers) and, depending on version
and proxy, sends the header the logon page did not.  Autodiscover, the other endpoint
known for the header, is its own probe (`http-autodiscover`): it also serves the search
for Exchange with OWA closed.
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-owa-version"
PATH = "/owa/service"


async def run(ctx: ProbeContext) -> None:
    if ctx.has_su_build() or ctx.fetched_target(PATH) or ctx.owa_closed():
        return  # nothing more to learn here
    await ctx.fetch(ID, "GET", PATH)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.EXCHANGE,),
    requests=(f"GET {PATH}",),
    description="X-OWA-Version on the OWA service endpoint",
    run=run,
)
