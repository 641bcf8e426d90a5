"""`http-owa-logon`: GET /owa/auth/logon.aspx when the /owa/ redirect did not lead there.

Some hosts show Exchange headers on /owa/ but redirect elsewhere (another host name, a
proxy); the logon page itself may still answer on this address.
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-owa-logon"
PATH = "/owa/auth/logon.aspx"


async def run(ctx: ProbeContext) -> None:
    if not ctx.fetched(PATH):
        await ctx.fetch(ID, "GET", PATH)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stage=Stage.EXCHANGE,
    requests=(f"GET {PATH}",),
    description="OWA logon page, when not already reached through the /owa/ redirect",
    run=run,
)
