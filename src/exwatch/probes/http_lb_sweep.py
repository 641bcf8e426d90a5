"""`http-lb-sweep`: every server behind a load balancer, by asking the logon page again.

Where the responses so far came from two or more front ends (different X-FEServer or NTLM
names) or showed two or more builds, the address is a balancer over several servers, and
the weakest of them is the exposure.  The logon page (markers, CU, often X-OWA-Version and
X-FEServer) is asked again while a request shows something new or a front end seen so far
has shown no build yet, at most MAX_EXTRA times.
Balancers that pin a connection to one server show the same one again: the sweep then
stops after one request (a known limit; `http-frontend` is the opt-in older form).
"""

from __future__ import annotations

from exwatch.fingerprint import sightings
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage
from exwatch.probes.http_owa_logon import PATH

ID = "http-lb-sweep"
MAX_EXTRA = 6


def identities(ctx: ProbeContext) -> tuple[frozenset[str], frozenset[str]]:
    """(front-end names, builds) seen so far."""
    names = set(ctx.header_values("x-feserver"))
    if ctx.ntlm is not None and ctx.ntlm.netbios_computer:
        names.add(ctx.ntlm.netbios_computer)
    builds = {s.build for s in ctx.sightings if s.build is not None}
    return frozenset(names), frozenset(builds)


def _several(ctx: ProbeContext) -> bool:
    names, builds = identities(ctx)
    cus = {".".join(b.split(".")[:3]) for b in builds}
    return len(names) >= 2 or len(cus) >= 2 or len(builds - cus) >= 2


def _without_build(ctx: ProbeContext) -> set[str]:
    """Front ends (X-FEServer) none of whose responses showed a build yet."""
    named: set[str] = set()
    shown: set[str] = set()
    for obs in ctx.observations:
        fe = next((v.strip() for n, v in obs.headers if n == "x-feserver"), None)
        if fe is None:
            continue
        named.add(fe)
        if any(s.build is not None for s in sightings(obs)):
            shown.add(fe)
    return named - shown


async def run(ctx: ProbeContext) -> None:
    if not _several(ctx):
        return
    before = identities(ctx)
    for _ in range(MAX_EXTRA):
        await ctx.fetch(ID, "GET", PATH)
        now = identities(ctx)
        if now == before and not _without_build(ctx):
            return
        before = now


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.EXCHANGE,),
    requests=(f"GET {PATH} (again, only behind a balancer; at most {MAX_EXTRA} times)",),
    description="Every front end and build behind a load balancer",
    run=run,
)
