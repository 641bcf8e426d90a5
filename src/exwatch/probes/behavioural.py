"""What the three behavioural check probes share: send the check's request, read it.

Each probe sends exactly the request `knowledge/checks.yaml` declares, on a new
connection; only where that request was aborted does it send the declared control
request (again on a new connection) to tell a mitigation from a host that stopped
answering.  The reading is `exwatch.checks.behaviour.read`'s.
"""

from __future__ import annotations

from exwatch.checks import behaviour
from exwatch.probes.base import ProbeContext


async def run_check(ctx: ProbeContext, check_id: str) -> None:
    check = behaviour.load().by_id(check_id)
    req = check.request
    answer = await ctx.ask(req.method, req.path, req.headers, fresh=True)
    control = None
    if answer.aborted and check.control is not None:
        ctl = check.control
        control = await ctx.ask(ctl.method, ctl.path, ctl.headers, fresh=True)
    ctx.checks[check_id] = behaviour.read(check, answer, control).to_json()


def declared(check_id: str) -> tuple[str, ...]:
    """The probe's `requests`, from the data it sends."""
    check = behaviour.load().by_id(check_id)
    lines = [f"{check.request.line()} (a new connection)"]
    if check.control is not None:
        lines.append(f"{check.control.line()} (only after an aborted request; a new connection)")
    return tuple(lines)


__all__ = ["declared", "run_check"]
