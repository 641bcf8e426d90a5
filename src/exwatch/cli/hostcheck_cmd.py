"""`exwatch hostcheck DIR`: look for ProxyLogon/ProxyShell traces in a copy of a server."""

from __future__ import annotations

import json
from pathlib import Path

import click

from exwatch.errors import UsageError
from exwatch.untrusted import plain_for_terminal as safe


@click.command(name="hostcheck")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object (findings, coverage, timeline)."
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Also write an HTML report here."
)
@click.option("--since", help="Ignore log records before this date or ISO timestamp (UTC).")
@click.option(
    "--exchange-path",
    help="Exchange install path as on the server (default: from the copy's layout, else "
    "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\).",
)
@click.option(
    "--parity", is_flag=True, help="Only Test-ProxyLogon's own checks (CSS-Exchange parity mode)."
)
def hostcheck(
    directory: Path,
    as_json: bool,
    output: Path | None,
    since: str | None,
    exchange_path: str | None,
    parity: bool,
) -> int:
    """Look for ProxyLogon/ProxyShell traces and web shells in DIRECTORY.

    DIRECTORY is a copy of an Exchange server's logs and folders in any layout (KAPE,
    ExchangeLogCollector, Test-ProxyLogon -CollectFiles, or a bare folder of logs).
    Exit code 0: nothing found; 1: findings; 2: usage error.  Status "empty" means nothing
    checkable was in the copy: that is not a clean result.
    """
    from exwatch.hostcheck.checker import run_hostcheck

    if not directory.is_dir():
        raise UsageError(f"not a folder: {directory}")
    result = run_hostcheck(directory, since=since, exchange_path=exchange_path, parity_only=parity)
    if output is not None:
        from exwatch.hostcheck.report_html import write_html

        try:
            write_html(result, output)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=1, ensure_ascii=False))
    else:
        _summary(result.to_json())
    return 1 if result.findings else 0


def _summary(report: dict[str, object]) -> None:
    echo = click.echo
    status = str(report["status"])
    findings = report["findings"]
    assert isinstance(findings, list)
    coverage = report["coverage"]
    assert isinstance(coverage, dict)
    echo(f"exwatch hostcheck: {safe(report['root'])}  (mode {report['mode']})")
    if status == "empty":
        echo(
            "STATUS: EMPTY COPY - no Exchange/IIS log, event log or web folder was found. "
            "Not a clean result."
        )
    elif status == "clean":
        echo("STATUS: nothing suspicious found in what was present (see coverage).")
    else:
        echo(f"STATUS: {len(findings)} FINDINGS")
    echo("\nCoverage:")
    for kind, cov in coverage["kinds"].items():
        echo(
            f"  {kind:28} {cov['files']:5} files {cov['records']:10} records "
            f"{cov['bad_lines']:6} bad  "
            f"{cov['first_timestamp'] or '-'} .. {cov['last_timestamp'] or '-'}"
        )
    for missing in coverage["missing_described"]:
        echo(f"  MISSING: {missing}")
    timeline = report["timeline"]
    assert isinstance(timeline, dict)
    if findings:
        echo("\nTimeline:")
        for label, key in (
            ("first SSRF", "first_ssrf"),
            ("first exploit", "first_exploit"),
            ("first file write", "first_file_write"),
            ("first web-shell use", "first_webshell_use"),
        ):
            e = timeline.get(key)
            if e:
                echo(
                    f"  {label:20} {e['timestamp']}  {e['rule']}  "
                    f"from {safe(e['source_ip'] or '-')}  {safe(e['file'])}:{e['line'] or ''}"
                )
        if timeline["source_addresses"]:
            echo("  source addresses:")
            for ip, s in timeline["source_addresses"].items():
                echo(f"    {safe(ip):40} {s['first']} .. {s['last']}  {s['findings']} findings")
        echo("\nFindings (by rule):")
        for e in timeline["events"]:
            echo(
                f"  [{e['cve'] or '-':14}] {e['rule']:42} x{e['count']:<6} "
                f"first {e['timestamp'] or '-'}  {safe(e['file'])}"
            )
        echo("\nExamples:")
        for f in findings[:20]:
            echo(f"  {f['severity']:8} {f['rule']}  {safe(f['file'])}:{f['line'] or ''}")
            echo(f"           {safe(f['evidence'], limit=300)}")
