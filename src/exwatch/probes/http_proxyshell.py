"""`http-proxyshell` (check `proxyshell`, opt-in): ProxyShell's Autodiscover path confusion
(CVE-2021-34473).

The Autodiscover path confusion of nuclei's CVE-2021-34473 template: an unpatched front end
strips the Email parameter's autodiscover.json from the path and hands /mapi/nspi/ to the
back end, whose unauthenticated status page answers. What it sends and how the answer is
read are data (`knowledge/checks.yaml`); see docs/checks.md.
"""

from __future__ import annotations

from exwatch.probes.behavioural import check_probe

ID = "http-proxyshell"
CHECK = "proxyshell"

PROBE = check_probe(ID, CHECK, "ProxyShell's Autodiscover path confusion (CVE-2021-34473)")
