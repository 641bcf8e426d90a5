"""`http-owa-resource`: the favicon of the very build the logon page names.

A real server serves the static files its page links (/owa/auth/15.1.2507/themes/
resources/favicon.ico; /owa/14.3.513.0/themes/resources/favicon.ico on 2010); a copied page
on a honeypot rarely brings them, or answers with the page itself.  Asked only where the
Exchange evidence is all of a kind a copied page can carry (no X-FEServer, NTLM, manifest).
"""

from __future__ import annotations

import re

from exwatch.plausibility import needs_request_checks
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-owa-resource"
# The favicon link of a stock page, as a same-host path (2013+: /owa/auth/<CU>/themes/
# resources/, 2010: /owa/<build>/themes/resources/, 2007: /owa/<build>/themes/base/).
_FAVICON = re.compile(
    r'href="(/owa/(?:auth/)?\d{1,2}\.\d{1,2}\.\d{1,5}(?:\.\d{1,5})?/themes/'
    r'(?:resources|base)/favicon\.ico)"'
)


def favicon_path(build: str) -> str:
    """Where the stock logon page of `build` keeps its favicon (when the page links none)."""
    if build.startswith("15."):
        return f"/owa/auth/{build}/themes/resources/favicon.ico"
    if build.startswith("8."):
        return f"/owa/{build}/themes/base/favicon.ico"
    return f"/owa/{build}/themes/resources/favicon.ico"


async def run(ctx: ProbeContext) -> None:
    if ctx.asked(ID):
        return
    page_builds = [s.build for s in ctx.sightings if s.source == "owa-path" and s.build]
    if not page_builds or not needs_request_checks(ctx.fingerprint()):
        return
    linked = (m.group(1) for o in ctx.observations if (m := _FAVICON.search(o.body)))
    await ctx.fetch(ID, "GET", next(linked, None) or favicon_path(page_builds[0]))


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.EXCHANGE,),
    requests=("GET /owa/auth/<CU>/themes/resources/favicon.ico (thin evidence only)",),
    description="The logon page's own favicon: missing or a page on honeypots",
    run=run,
)
