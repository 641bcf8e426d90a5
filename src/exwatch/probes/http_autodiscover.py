"""`http-autodiscover`: GET /autodiscover/autodiscover.xml, anonymously.

Two uses.  On a host whose logon page settled nothing (DISCOVER), it is the one extra
request every answering host gets: Exchange with OWA closed still publishes Autodiscover
(ProxyShell's way in), and its 401 offers Windows authentication and, since the July 2021
security updates, often X-OWA-Version and X-FEServer.  On an Exchange host (EXCHANGE) it
is a build probe, skipped once a four-part build is known.
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-autodiscover"
PATH = "/autodiscover/autodiscover.xml"


async def run(ctx: ProbeContext) -> None:
    if ctx.fetched_target(PATH):
        return
    if ctx.stage is Stage.EXCHANGE and (ctx.has_su_build() or ctx.only_lines("2003")):
        return  # Autodiscover came with Exchange 2007
    await ctx.fetch(ID, "GET", PATH)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.DISCOVER, Stage.EXCHANGE),
    requests=(f"GET {PATH}",),
    description="Autodiscover's 401: Windows authentication, X-OWA-Version, X-FEServer",
    run=run,
)
