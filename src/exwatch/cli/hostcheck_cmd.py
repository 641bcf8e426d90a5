"""`exwatch hostcheck DIR`: look for ProxyLogon/ProxyShell traces in a copy of a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    """Look for ProxyLogon/ProxyShell/ProxyNotShell traces and web shells in DIRECTORY.

    DIRECTORY is a copy of an Exchange server's logs and folders in any layout (KAPE,
    ExchangeLogCollector, Test-ProxyLogon -CollectFiles, or a bare folder of logs):
    HttpProxy, IIS, ECP, OABGenerator and cmdlet logs, every .evtx (Sysmon, Security,
    PowerShell, System, Defender, Application, MSExchange Management), and event exports
    as JSON or JSON lines (evtx_dump, Sentinel, Splunk, Elastic), also inside .zip files.

    \b
    Exit codes and JSON "status":
      0  clean       nothing found, and every stage (initial access, execution,
                     persistence, exfiltration) had a log that was read
      1  findings    something was found
      2              usage error (bad folder, bad option)
      3  empty       nothing to check was in the copy, or
         unreadable  logs were there but nothing usable could be read from them
      4  partial     nothing found in what was read, but some stage could not be
                     seen (the report lists what was missing or unreadable)
    Only 0 means clean.
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
        click.echo(result.to_json_text())
    else:
        _summary(result.to_json())
    return result.exit_code


_MAX_NOTES = 20  # file warnings shown on the terminal; --json has them all

_STATUS_LINES = {
    "empty": "STATUS: EMPTY COPY - no Exchange/IIS log, event log or web folder was found. "
    "Not a clean result.",
    "unreadable": "STATUS: UNREADABLE - logs were found but nothing usable could be read "
    "from them (see the files below). Not a clean result.",
    "partial": "STATUS: PARTIAL - nothing suspicious in what was read, but some stages could "
    "not be seen (see coverage). Not a clean result.",
    "clean": "STATUS: clean - nothing suspicious, and every stage had a log that was read.",
}


def _summary(report: dict[str, Any]) -> None:
    echo = click.echo
    status = str(report["status"])
    findings: list[dict[str, Any]] = report["findings"]
    coverage: dict[str, Any] = report["coverage"]
    echo(f"exwatch hostcheck: {safe(report['root'])}  (mode {report['mode']})")
    if status == "findings":
        more = sum(report["suppressed_findings"].values())
        echo(f"STATUS: {len(findings)} FINDINGS" + (f" (and {more} more counted)" if more else ""))
    else:
        echo(_STATUS_LINES[status])
    echo("\nCoverage by stage:")
    for stage, s in coverage["stages"].items():
        read = ", ".join(s["read"]) or "-"
        echo(f"  {stage:15} {'covered' if s['covered'] else 'NOT COVERED':12} read: {read}")
        if s["unreadable"]:
            echo(f"  {'':28} unreadable: {', '.join(s['unreadable'])}")
        if s["missing"]:
            echo(f"  {'':28} missing: {', '.join(s['missing'])}")
    echo("\nSources read:")
    for name, cov in coverage["sources"].items():
        if cov["state"] == "missing":
            continue
        echo(
            f"  {name:28} {cov['state']:10} {cov['files']:5} files {cov['records']:10} records "
            f"{cov['bad_lines']:6} bad  "
            f"{cov['first_timestamp'] or '-'} .. {cov['last_timestamp'] or '-'}"
        )
    skipped = coverage["skipped"]
    if skipped["bad_lines"] or skipped["unreadable_files"]:
        echo(
            f"  skipped: {skipped['bad_lines']} unparsable lines or damaged records in "
            f"{skipped['files']} files; {len(skipped['unreadable_files'])} unreadable files"
        )
    if coverage["health_probes_ignored"]:
        echo(f"  left out: {coverage['health_probes_ignored']} Managed Availability health probes")
    notes = [
        (kind, f["file"], text)
        for f in coverage["files"]
        for kind, text in [("unreadable", f["error"])] * bool(f["error"])
        + [("warning", w) for w in f["warnings"][:3]]
    ]
    for kind, name, text in notes[:_MAX_NOTES]:
        echo(f"  {kind}: {safe(name)}: {safe(text, limit=300)}")
    if len(notes) > _MAX_NOTES:
        echo(f"  ... and {len(notes) - _MAX_NOTES} more file notes (see --json)")
    timeline: dict[str, Any] = report["timeline"]
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
