"""The scanner's probes, registered explicitly.

The FIRST stage (`http-owa-logon`) runs on every host: one TLS handshake and, for a host
the logon page settles as not Exchange, one request.  DISCOVER runs where it settled
nothing: Autodiscover always (one request), the rest only as far as the answers call for
(Exchange with OWA closed, Exchange 2003).  EXCHANGE runs where on-prem Exchange was
found, on the same keep-alive connection; its build probes stop as soon as a four-part
build is read.  CHECK holds the opt-in checks (`--check`, risk class intrusive): they run
only where the finished fingerprint says on-prem Exchange, once per host per scan.  The
order within each stage is `scan.host`'s (DISCOVER_ORDER, EXCHANGE_ORDER, CHECK_ORDER);
this tuple is the catalogue.
"""

from __future__ import annotations

from exwatch.errors import UsageError
from exwatch.probes import (
    http_activesync,
    http_autodiscover,
    http_control,
    http_ecp_cu_folder,
    http_ecp_exporttool,
    http_ews_ntlm,
    http_frontend,
    http_lb_sweep,
    http_legacy_owa,
    http_owa,
    http_owa_logon,
    http_owa_resource,
    http_owa_static,
    http_owa_version,
    http_proxylogon,
    http_proxynotshell,
    http_proxyshell,
    http_webshells,
)
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

PROBES: tuple[Probe, ...] = (
    http_owa_logon.PROBE,
    http_legacy_owa.PROBE,
    http_autodiscover.PROBE,
    http_ecp_exporttool.PROBE,
    http_ews_ntlm.PROBE,  # its 401 often carries X-OWA-Version: before the header probes
    http_control.PROBE,
    http_activesync.PROBE,
    http_owa_version.PROBE,
    http_owa.PROBE,
    http_owa_static.PROBE,
    http_ecp_cu_folder.PROBE,
    http_lb_sweep.PROBE,
    http_owa_resource.PROBE,
    http_frontend.PROBE,
    http_proxylogon.PROBE,
    http_proxyshell.PROBE,
    http_proxynotshell.PROBE,
    http_webshells.PROBE,
)
BY_ID: dict[str, Probe] = {p.id: p for p in PROBES}


def select(ids: tuple[str, ...] | None, *, allow_intrusive: bool) -> tuple[Probe, ...]:
    """The probes to run, in registration order; refuses unknown ids and, unless allowed,
    intrusive probes (raise UsageError)."""
    if ids is None:
        chosen = tuple(p for p in PROBES if p.risk is Risk.PASSIVE and p.default)
    else:
        unknown = sorted(set(ids) - BY_ID.keys())
        if unknown:
            raise UsageError(
                f"unknown probe id(s): {', '.join(unknown)} (known: {', '.join(BY_ID)})"
            )
        chosen = tuple(p for p in PROBES if p.id in ids)
    risky = [p.id for p in chosen if p.risk is Risk.INTRUSIVE]
    if risky and not allow_intrusive:
        raise UsageError(
            f"probe(s) {', '.join(risky)} are intrusive; they run only as checks asked for "
            "with --check"
        )
    return chosen


__all__ = ["BY_ID", "PROBES", "Probe", "ProbeContext", "Risk", "Stage", "select"]
