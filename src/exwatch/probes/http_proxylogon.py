"""`http-proxylogon` (check `proxylogon`, opt-in): ProxyLogon's X-BEResource routing
(CVE-2021-26855) and the EOMT mitigation.

Microsoft's own nmap check for CVE-2021-26855 asked for /owa/auth/x.js with cookies routing
the request to localhost; a vulnerable front end names localhost in X-CalculatedBETarget.
The March 2021 mitigation (EOMT, BackendCookieMitigation) aborts any request carrying those
cookies. What it sends and how the answer is read are data (`knowledge/checks.yaml`); see
docs/checks.md.
"""

from __future__ import annotations

from exwatch.probes.base import Probe, ProbeContext, Risk, Stage
from exwatch.probes.behavioural import declared, run_check

ID = "http-proxylogon"
CHECK = "proxylogon"


async def run(ctx: ProbeContext) -> None:
    await run_check(ctx, CHECK)


PROBE = Probe(
    id=ID,
    risk=Risk.INTRUSIVE,
    stages=(Stage.CHECK,),
    requests=declared(CHECK),
    description="ProxyLogon's X-BEResource routing (CVE-2021-26855) and the EOMT mitigation",
    run=run,
    default=False,
)
