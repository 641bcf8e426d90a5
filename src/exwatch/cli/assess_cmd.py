"""`exwatch assess BUILD [--json]`: classify one build against the CVE catalogue."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from exwatch.assess import assess as run_assess
from exwatch.knowledge import catalogue as kb
from exwatch.model import Verdict

_STYLE = {
    Verdict.VULNERABLE: "bold red",
    Verdict.PATCHED: "green",
    Verdict.UNDETERMINED: "yellow",
    Verdict.NOT_AFFECTED: "dim",
}


@click.command("assess")
@click.argument("build")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def assess(build: str, as_json: bool) -> None:
    """Classify an Exchange BUILD (3 or 4 parts, e.g. 15.1.2176.9 or 15.01.2176.009).

    For each CVE in the catalogue the verdict is vulnerable, patched, undetermined
    (only the CU is visible, or the fix is configuration) or not-affected.
    """
    result = run_assess(build)  # BuildParseError -> one-line message, exit 2
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    console = Console(highlight=False)
    head = result.product or "unknown product"
    if result.cu:
        head += f" {result.cu}"
    if result.su:
        head += f" {result.su}"
    console.print(f"[bold]{result.build}[/bold]  {head}  (precision: {result.precision.value})")
    console.print(f"  {result.placement}")
    if result.release_date:
        console.print(f"  released {result.release_date.isoformat()}")
    if result.eol:
        eos = result.end_of_support.isoformat() if result.end_of_support else "?"
        console.print(f"  [bold red]end of life[/bold red] (support ended {eos})")
    table = Table(show_header=True, header_style="bold")
    table.add_column("CVE")
    table.add_column("name")
    table.add_column("verdict")
    table.add_column("why")
    cat = kb.default()
    for cve_id, res in result.cves.items():
        cve = cat.cve(cve_id)
        table.add_row(
            cve_id, cve.name, f"[{_STYLE[res.verdict]}]{res.verdict.value}[/]", res.reason
        )
    console.print(table)
