"""The scanner's probes, registered explicitly and run in this order.

The FIRST stage (`http-owa-logon`) runs on every host: one TLS handshake and, for a host
that is not Exchange, one request.  The EXCHANGE stage runs only where the first stage found
Exchange markers, on the same keep-alive connection; its build probes stop as soon as a
four-part build is read, so they are ordered by how often each one gives it.
"""

from __future__ import annotations

from exwatch.errors import UsageError
from exwatch.probes import (
    http_ecp_exporttool,
    http_ews_ntlm,
    http_frontend,
    http_owa,
    http_owa_logon,
    http_owa_version,
)
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

PROBES: tuple[Probe, ...] = (
    http_owa_logon.PROBE,
    http_ecp_exporttool.PROBE,
    http_ews_ntlm.PROBE,  # its 401 often carries X-OWA-Version: before the header probes
    http_owa_version.PROBE,
    http_owa.PROBE,
    http_frontend.PROBE,
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
        raise UsageError(f"probe(s) {', '.join(risky)} are intrusive; they need an explicit opt-in")
    return chosen


__all__ = ["BY_ID", "PROBES", "Probe", "ProbeContext", "Risk", "Stage", "select"]
