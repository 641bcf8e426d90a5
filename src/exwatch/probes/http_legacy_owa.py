"""`http-legacy-owa`: Exchange 2003's logon page, /exchweb/bin/auth/owalogon.asp.

Exchange 2003 has no /owa/ (that came with 2007), so the first request never finds it.
It only ran on Windows 2000 and 2003, so the page is asked for only where the first
response's Server header is an IIS version of those (the plausibility data says which):
on every other host this probe costs nothing.
"""

from __future__ import annotations

import re

from exwatch.plausibility import RULES
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-legacy-owa"
PATH = "/exchweb/bin/auth/owalogon.asp"
_IIS = re.compile(r"^\s*Microsoft-IIS/(\d{1,2}\.\d{1,2})\b")


def _runs_2003(ctx: ProbeContext) -> bool:
    versions = RULES.iis.get("2003", frozenset())
    for server in ctx.header_values("server"):
        m = _IIS.match(server)
        if m is not None and m.group(1) in versions:
            return True
    return False


async def run(ctx: ProbeContext) -> None:
    if ctx.fetched_target(PATH) or not _runs_2003(ctx):
        return
    await ctx.fetch(ID, "GET", PATH)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.DISCOVER,),
    requests=(f"GET {PATH} (IIS 5.0/6.0 only)",),
    description="Exchange 2003's logon page, on the IIS versions it ran on",
    run=run,
)
