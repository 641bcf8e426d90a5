"""`exwatch selftest`: check every shipped data file against its own examples."""

from __future__ import annotations

import click

from exwatch.selftest import CheckResult, run_all
from exwatch.untrusted import plain_for_terminal


@click.command("selftest")
@click.option(
    "--templates",
    type=click.Path(exists=True, file_okay=False),
    help="Also try a folder that overrides the notify templates (as notify --templates).",
)
def selftest(templates: str | None) -> int:
    """Check schema, consistency and every example of every shipped data file, and render
    every notify template around hostile server strings."""
    results: list[CheckResult] = run_all()
    if templates is not None:
        from exwatch.notify.selftest import selftest as templates_selftest

        results.append(templates_selftest(templates))
    failed = 0
    for res in results:
        mark = "ok" if res.ok else "FAIL"
        click.echo(f"{mark:4} {res.name}: {res.examples} examples, {len(res.problems)} problems")
        for problem in res.problems:
            click.echo(f"     {plain_for_terminal(problem, 400)}")
        failed += not res.ok
    return 1 if failed else 0
