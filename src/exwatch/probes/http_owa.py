"""`http-owa`: GET /owa/ (and its redirect to the logon page) while the build is not exact.

Exchange answers /owa/ with a redirect to /owa/auth/logon.aspx, often with X-OWA-Version
and X-FEServer.  The logon page was asked for directly in the first stage, so /owa/ is
only worth a request when no four-part build was read yet.
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage
from exwatch.probes.http_owa_logon import fetch_following

ID = "http-owa"
PATH = "/owa/"


async def run(ctx: ProbeContext) -> None:
    if ctx.has_su_build() or ctx.fetched_target(PATH) or ctx.owa_closed():
        return  # nothing more to learn here
    await fetch_following(ctx, ID, PATH)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.EXCHANGE,),
    requests=(f"GET {PATH}", "GET <same-host redirect under /owa/auth/>"),
    description="OWA entry point: X-OWA-Version and the redirect, when the build is not exact",
    run=run,
)
