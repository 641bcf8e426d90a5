"""`exwatch selftest`: check every shipped data file against its own examples."""

from __future__ import annotations

import click

from exwatch.selftest import run_all
from exwatch.untrusted import plain_for_terminal


@click.command("selftest")
def selftest() -> int:
    """Check schema, consistency and every example of every shipped data file."""
    failed = 0
    for res in run_all():
        mark = "ok" if res.ok else "FAIL"
        click.echo(f"{mark:4} {res.name}: {res.examples} examples, {len(res.problems)} problems")
        for problem in res.problems:
            click.echo(f"     {plain_for_terminal(problem, 400)}")
        failed += not res.ok
    return 1 if failed else 0
