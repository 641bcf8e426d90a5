"""`exwatch knowledge check FILE...`: what a newer build list, CVE list or KEV file adds."""

from __future__ import annotations

import json
from pathlib import Path

import click

from exwatch.knowledge.catalogue import default
from exwatch.knowledge.upstream import csv_rows, cve_skeleton, diff, read_upstream
from exwatch.untrusted import plain_for_terminal


@click.group("knowledge")
def knowledge() -> None:
    """Keep the shipped build table and CVE catalogue current (docs/knowledge.md)."""


@knowledge.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as one JSON object.")
def check(files: tuple[Path, ...], as_json: bool) -> int:
    """Diff the shipped tables against FILEs: an export of Microsoft's build list (JSON or
    CSV), a CVE list (JSON, the Security Update Guide CSV export, or text with CVE ids) or
    the CISA KEV catalog.

    Prints the builds.csv rows to add (their source id still to fill in), release dates that
    differ, CVEs since 2020 missing from cves.yaml with a skeleton entry each, and KEV dates
    that differ.  Exit code 0: nothing to add; 1: something to add; 2: unreadable input.
    """
    report = diff(default(), [read_upstream(p) for p in files])
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return 1 if report.something_to_do else 0
    for inp in report.inputs:
        click.echo(
            f"{plain_for_terminal(inp['path'], 200)}: read as {inp['kind']}: "
            f"{inp['builds']} builds, {inp['cves']} CVEs, {inp['skipped']} entries not understood"
        )
    if report.builds_missing:
        click.echo(
            f"\n{len(report.builds_missing)} builds missing from builds.csv"
            " (check each against its source):"
        )
        for row in report.builds_missing:
            click.echo(f"# upstream name: {plain_for_terminal(row['upstream_name'], 160)}")
            click.echo(plain_for_terminal(csv_rows([row]).rstrip("\n"), 600))
    if report.builds_date_differs:
        click.echo(f"\n{len(report.builds_date_differs)} release dates differ (here -> upstream):")
        for d in report.builds_date_differs:
            note = f"  ({plain_for_terminal(d['here_note'], 120)})" if d["here_note"] else ""
            click.echo(f"  {d['build']}: {d['here']} -> {d['upstream']}{note}")
    if report.cves_missing:
        click.echo(
            f"\n{len(report.cves_missing)} CVEs missing from cves.yaml"
            " (complete each from its CVE record):"
        )
        for c in report.cves_missing:
            detail = f"  # {plain_for_terminal(c['detail'], 300)}" if c["detail"] else ""
            click.echo(f"{detail}\n{cve_skeleton(c)}" if detail else cve_skeleton(c))
    if report.kev_differs:
        click.echo(f"\n{len(report.kev_differs)} KEV dates differ (here -> upstream):")
        for d in report.kev_differs:
            click.echo(
                f"  {d['cve']}: {d['here'] or 'not in KEV'} -> {d['upstream'] or 'not in KEV'}"
            )
    if not report.something_to_do:
        click.echo("\nnothing to add: the shipped tables cover these inputs")
    elif report.builds_only_here:
        click.echo(f"\n({len(report.builds_only_here)} builds are here but not upstream)")
    return 1 if report.something_to_do else 0
