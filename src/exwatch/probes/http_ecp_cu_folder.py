"""`http-ecp-cu-folder`: the export tool under the folder of the server's own CU.

Some servers serve the eDiscovery export tool only under /ecp/<first build of the
CU>/exporttool/, not under /ecp/Current/.  Where /ecp/Current/ was reached (a 404 that
came from Exchange, with its headers, not from a proxy blocking ECP) and the CU is known
(the logon page or errorFE.aspx), that one folder is asked: its manifest names the
four-part build.  One request, never a brute force over builds (Metasploit walks every
build of every CU; righel's loop over a CU's builds re-reads the same response).
"""

from __future__ import annotations

from functools import lru_cache

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage
from exwatch.probes.http_ecp_exporttool import ID as CURRENT_ID
from exwatch.probes.http_ecp_exporttool import TOOL

ID = "http-ecp-cu-folder"
_EXCHANGE_SAYS = frozenset({"x-feserver", "x-beserver", "x-calculatedbetarget", "x-owa-version"})


@lru_cache(maxsize=512)
def cu_folder(cu_build: str) -> str | None:
    """The first (release) build of the CU a three-part build names, from the build table;
    None for a CU the table does not know or a line without the tool (before 2013)."""
    from exwatch.errors import ExwatchError
    from exwatch.knowledge import catalogue as kb  # loaded on first use, not at import
    from exwatch.model import Build

    try:
        b = Build.parse(cu_build)
        cat = kb.default()
    except ExwatchError:
        return None
    product = cat.product_for(b) if b.major == 15 else None
    if product is None:
        return None
    for cu in cat.cus.get(product.id, ()):
        if b.cu_key in cu.keys:
            return str(cu.release.build)
    return None


def _current_reached(ctx: ProbeContext) -> bool:
    """/ecp/Current/ answered 404 from Exchange itself (its own headers on the answer)."""
    return any(
        obs.probe == CURRENT_ID
        and obs.status == 404
        and any(name in _EXCHANGE_SAYS for name, _ in obs.headers)
        for obs in ctx.observations
    )


async def run(ctx: ProbeContext) -> None:
    if ctx.has_su_build() or not _current_reached(ctx):
        return
    cus = [s.build for s in ctx.sightings if s.build is not None and s.build.count(".") == 2]
    if not cus:
        return
    oldest = min(cus, key=lambda b: tuple(int(p) for p in b.split(".")))
    folder = cu_folder(oldest)
    if folder is None:
        return
    target = f"/ecp/{folder}/{TOOL}"
    if not ctx.fetched_target(target):
        await ctx.fetch(ID, "GET", target)


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.EXCHANGE,),
    requests=(f"GET /ecp/<first build of the CU>/{TOOL} (one request, when the CU is known)",),
    description="Export tool manifest under the CU's own folder",
    run=run,
)
