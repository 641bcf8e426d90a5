"""`http-webshells` (check `webshells`, opt-in): the web shells the 2021 campaigns left.

First a baseline: one random name per folder the known paths live in (what this server
says about a file it does not have; many answer a page for any path).  Then a GET of every
known shell path of `knowledge/compromise.yaml`, on the kept-alive connection, and the
judgement of `exwatch.checks.compromise` (a known shell's shape that the baseline does not
show, never a status alone).  Stops early only when the host's deadline is reached.
"""

from __future__ import annotations

import secrets

from exwatch.checks import catalogue, compromise, indicators
from exwatch.checks.answer import Answer
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = catalogue.WEBSHELLS_PROBE
CHECK = catalogue.WEBSHELLS
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def random_name() -> str:
    """12 lower-case letters and .aspx: no server has it, none rewrites it."""
    return "".join(secrets.choice(_LETTERS) for _ in range(12)) + ".aspx"


async def run(ctx: ProbeContext) -> None:
    data = indicators.load()
    baselines: list[compromise.Baseline] = []
    answers: dict[str, Answer] = {}
    for folder in data.folders:
        path = folder + random_name()
        answer = await ctx.ask("GET", path)
        baselines.append(compromise.Baseline(folder, path, answer))
        if answer.out_of_time:
            break
    else:
        for known in data.paths:
            answer = await ctx.ask("GET", known.path)
            answers[known.path] = answer
            if answer.out_of_time:
                break
    ctx.checks[CHECK] = compromise.judge(data, baselines, answers).to_json()


PROBE = Probe(
    id=ID,
    risk=Risk.INTRUSIVE,
    stages=(Stage.CHECK,),
    requests=catalogue.webshell_requests(),
    description="Web shells at the paths the 2021 campaigns used, judged against a baseline",
    run=run,
    default=False,
)
