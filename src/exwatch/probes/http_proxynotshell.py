"""`http-proxynotshell` (check `proxynotshell-mitigation`, opt-in): Whether the ProxyNotShell
URL Rewrite mitigation is in place (CVE-2022-41040, CVE-2022-41082).

The mitigation (EOMTv2, Exchange's Emergency Mitigation Service, Microsoft's manual rule)
aborts a request whose URI has autodiscover(.json) and powershell; CronUp's check sends such
a request to /owa/ and reads an answer as no mitigation. What it sends and how the answer is
read are data (`knowledge/checks.yaml`); see docs/checks.md.
"""

from __future__ import annotations

from exwatch.probes.behavioural import check_probe

ID = "http-proxynotshell"
CHECK = "proxynotshell-mitigation"

PROBE = check_probe(ID, CHECK, "Whether the ProxyNotShell URL Rewrite mitigation is in place")
