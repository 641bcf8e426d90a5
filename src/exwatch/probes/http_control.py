"""`http-control`: GET a random path, to learn how the server answers a path it lacks.

Exchange on IIS answers 404.  A site behind Windows authentication as a whole answers 401
everywhere, so Windows authentication on Exchange's paths only counts (the closed-OWA
patterns) next to an ordinary 404 here; a honeypot often answers every path with its page.
Asked only where that matters: in DISCOVER once Windows authentication was offered, in
EXCHANGE where the evidence is all of a kind a copied page can carry.
"""

from __future__ import annotations

import base64
import secrets

from exwatch.plausibility import needs_request_checks
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-control"


def random_path() -> str:
    """A path no server has: letters and digits, so no server rewrites it (80 random bits
    in base32, read from the system once, not once per character)."""
    return "/" + base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


async def run(ctx: ProbeContext) -> None:
    if ctx.asked(ID):
        return
    if ctx.stage is Stage.DISCOVER:
        if "windows-auth" not in ctx.clue_sources():
            return
    elif not needs_request_checks(ctx.fingerprint()):
        return
    await ctx.fetch(ID, "GET", random_path())


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.DISCOVER, Stage.EXCHANGE),
    requests=("GET /<16 random letters and digits>",),
    description="A path the server lacks: tells Exchange's paths from a catch-all answer",
    run=run,
)
