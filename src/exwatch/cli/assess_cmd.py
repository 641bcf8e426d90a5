"""`exwatch assess BUILD... [--json]`: classify builds against the CVE catalogue."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator

import click
from rich.console import Console
from rich.table import Table

from exwatch.assess import assess as run_assess
from exwatch.errors import BuildParseError
from exwatch.knowledge.catalogue import Catalogue, default
from exwatch.model import Assessment, Verdict
from exwatch.untrusted import for_terminal, plain_for_terminal

_STYLE = {
    Verdict.VULNERABLE: "bold red",
    Verdict.PATCHED: "green",
    Verdict.UNDETERMINED: "yellow",
    Verdict.NOT_AFFECTED: "dim",
    Verdict.MITIGATED: "cyan",
}
_PIPE_WIDTH = 200
_ORDER = [Verdict.VULNERABLE, Verdict.UNDETERMINED, Verdict.MITIGATED, Verdict.PATCHED]


def _inputs(builds: Iterable[str]) -> Iterator[str]:
    """The builds given, with `-` standing for one build per line of standard input."""
    for b in builds:
        if b == "-":
            for line in sys.stdin:
                if line.strip() and not line.lstrip().startswith("#"):
                    yield line.strip()
        else:
            yield b


def _console() -> Console:
    """Rich's console; into a pipe or file the table is not wrapped at 80 columns, so that
    each CVE stays on one line for grep and friends (COLUMNS still wins when set)."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, width=_PIPE_WIDTH if piped else None)


def _lag_lines(result: Assessment) -> list[str]:
    lag = result.patch_lag
    if lag is None:
        return []
    bound = "" if lag.exact else "at most "
    cu_state = (
        "still receives security updates" if lag.cu_receives_sus else "no longer gets updates"
    )
    lines = [
        f"  patch lag: {bound}{lag.sus_behind} updates behind its CU "
        f"(newest {lag.cu_latest} {lag.cu_latest_su or 'CU release'}); the CU {cu_state}",
        f"  {bound}{lag.days_behind} days behind the line's newest update "
        f"({lag.latest} {lag.latest_su or ''}, {lag.latest_cu})",
    ]
    if lag.cus_behind:
        lines.append(f"  {lag.cus_behind} CUs behind the newest CU")
    return lines


def _table(result: Assessment, cat: Catalogue, only: tuple[str, ...], console: Console) -> None:
    head = result.product or "unknown product"
    if result.cu:
        head += f" {result.cu}"
    if result.su:
        head += f" {result.su}"
    console.print(f"[bold]{result.build}[/bold]  {head}  (precision: {result.precision.value})")
    console.print(f"  {for_terminal(result.placement, 300)}")
    if result.release_date:
        console.print(f"  released {result.release_date.isoformat()}")
    if result.eol:
        eos = result.end_of_support.isoformat() if result.end_of_support else "?"
        console.print(f"  [bold red]end of support[/bold red] (ended {eos})")
    for line in _lag_lines(result):
        console.print(line)
    counts = Counter(r.verdict for r in result.cves.values())
    kev_vuln = sorted(
        c for c, r in result.cves.items() if r.verdict is Verdict.VULNERABLE and cat.cve(c).kev
    )
    console.print(
        "  "
        + ", ".join(f"{counts[v]} {v.value}" for v in (*_ORDER, Verdict.NOT_AFFECTED) if counts[v])
        + (f"; known exploited (KEV) and vulnerable: {len(kev_vuln)}" if kev_vuln else "")
    )
    table = Table(show_header=True, header_style="bold")
    for col in ("CVE", "verdict", "KEV", "CVSS", "pre-auth", "basis"):
        table.add_column(col)
    wanted = {Verdict(v) for v in only}
    for cve_id, res in result.cves.items():
        if wanted and res.verdict not in wanted:
            continue
        cve = cat.cve(cve_id)
        pre = {True: "yes", False: "no", None: "?"}[cve.pre_auth]
        table.add_row(
            cve_id + (f" ({cve.name})" if cve.name else ""),
            f"[{_STYLE[res.verdict]}]{res.verdict.value}[/]",
            "yes" if cve.kev else "",
            "" if cve.cvss is None else f"{cve.cvss:.1f}",
            pre,
            for_terminal(res.basis, 120),
        )
    console.print(table)


@click.command("assess")
@click.argument("builds", nargs=-1, required=True, metavar="BUILD...")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object (several builds: one JSON object per line).",
)
@click.option(
    "--only",
    type=click.Choice([v.value for v in Verdict]),
    multiple=True,
    help="Table: show only CVEs with this verdict (repeatable).",
)
def assess(builds: tuple[str, ...], as_json: bool, only: tuple[str, ...]) -> int:
    """Classify Exchange BUILDs (3 or 4 parts, e.g. 15.1.2176.9 or 15.01.2176.009; `-` reads
    one build per line from standard input).

    For each CVE in the catalogue the verdict is vulnerable, patched, undetermined (only the
    CU is visible, or the fix is configuration) or not-affected, with the basis: the build
    compared with and the id of the source (sources.yaml).  The patch lag says how many
    updates and days the build is behind its CU and its product line.
    """
    items = list(_inputs(builds))
    if len(items) == 1 and builds != ("-",):
        result = run_assess(items[0])  # BuildParseError -> one-line message, exit 2
        if as_json:
            click.echo(json.dumps(result.to_json(), indent=2))
        else:
            _table(result, default(), only, _console())
        return 0
    failed = 0
    console = _console()
    for text in items:
        try:
            result = run_assess(text)
        except BuildParseError as exc:
            failed += 1
            if as_json:
                click.echo(json.dumps({"input": text[:100], "error": str(exc)}))
            else:
                click.echo(f"exwatch: {plain_for_terminal(exc, 200)}", err=True)
            continue
        if as_json:
            click.echo(json.dumps(result.to_json(), separators=(",", ":")))
        else:
            _table(result, default(), only, console)
    return 1 if failed else 0
