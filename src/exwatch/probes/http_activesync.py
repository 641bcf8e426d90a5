"""`http-activesync`: GET /Microsoft-Server-ActiveSync, the mobile endpoint that often stays
published when OWA is closed.  Asked only in DISCOVER, after Windows authentication was
offered on another Exchange path and the random path was an ordinary 404, and only while
that is not yet enough to call the host Exchange.
"""

from __future__ import annotations

from exwatch.fingerprint import is_exchange, is_online
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-activesync"
PATH = "/Microsoft-Server-ActiveSync"


async def run(ctx: ProbeContext) -> None:
    if ctx.fetched_target(PATH) or not ctx.has_clue("control-not-found"):
        return
    if "windows-auth" not in ctx.clue_sources():
        return
    if is_exchange(ctx.sightings) or is_online(ctx.sightings):
        return
    await ctx.fetch(ID, "GET", PATH)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.DISCOVER,),
    requests=(f"GET {PATH}",),
    description="ActiveSync's 401, one more clue of Exchange with OWA closed",
    run=run,
)
