"""What the three behavioural check probes share: send the check's request, read it.

Each probe sends exactly the request `knowledge/checks.yaml` declares, on a new
connection; only where that request was aborted does it send the declared control
request (again on a new connection) to tell a mitigation from a host that stopped
answering.  The reading is `exwatch.checks.behaviour.read`'s.
"""

from __future__ import annotations

import functools

from exwatch.checks import behaviour
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage


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


def check_probe(probe_id: str, check_id: str, description: str) -> Probe:
    """The opt-in probe that runs one behavioural check (intrusive, its own stage, never
    in the default set), declaring the requests the data makes it send."""
    return Probe(
        id=probe_id,
        risk=Risk.INTRUSIVE,
        stages=(Stage.CHECK,),
        requests=declared(check_id),
        description=description,
        run=functools.partial(run_check, check_id=check_id),
        default=False,
    )


__all__ = ["check_probe", "declared", "run_check"]
