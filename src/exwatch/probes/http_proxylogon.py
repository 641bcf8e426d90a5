"""`http-proxylogon` (check `proxylogon`, opt-in): ProxyLogon's X-BEResource routing
(CVE-2021-26855) and the EOMT mitigation.

Microsoft's own nmap check for CVE-2021-26855 asked for /owa/auth/x.js with cookies routing
the request to localhost; a vulnerable front end names localhost in X-CalculatedBETarget.
The March 2021 mitigation (EOMT, BackendCookieMitigation) aborts any request carrying those
cookies. What it sends and how the answer is read are data (`knowledge/checks.yaml`); see
docs/checks.md.
"""

from __future__ import annotations

from exwatch.probes.behavioural import check_probe

ID = "http-proxylogon"
CHECK = "proxylogon"

PROBE = check_probe(
    ID, CHECK, "ProxyLogon's X-BEResource routing (CVE-2021-26855) and the EOMT mitigation"
)
