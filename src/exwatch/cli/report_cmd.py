"""`exwatch report`: counts per country/AS/sector/organisation/version/CVE with patch lag, the
months-behind distribution, the KEV-only host list, host history, trend."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from exwatch.cli.enrich_cmd import db_option, enrichment_options, fill_missing, open_db
from exwatch.errors import UsageError
from exwatch.report import aggregate, enrichment, trends
from exwatch.report.cves import cve_report
from exwatch.report.exports import neutralise
from exwatch.report.kev import kev_hosts
from exwatch.report.lag import Thresholds
from exwatch.store import Store
from exwatch.untrusted import for_terminal

BY_CHOICES = (*aggregate.GROUPS, "months", "kev", "host", "scan")
FORMATS = ("table", "json", "csv", "html")

_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "group": [
        ("key", "key"), ("name", "name"), ("hosts", "hosts"), ("exchange", "Exchange"),
        ("vulnerable", "vulnerable"), ("vulnerable_pct", "% vuln"), ("eol", "EOL"),
        ("eol_pct", "% EOL"), ("kev", "KEV"), ("median_months_behind", "median mo"),
        ("behind_sus_pct", "% ≥{sus} SU"), ("behind_months_pct", "% ≥{months} mo"),
        ("cu_no_sus_pct", "% no SUs"), ("behind_cu_pct", "% old CU"),
    ],
    "cve": [
        ("key", "CVE"), ("name", "name"), ("kev_added", "KEV"), ("cvss", "CVSS"),
        ("fixed_by", "fixed by"), ("hosts", "assessed"), ("vulnerable", "vulnerable"),
        ("patched", "patched"), ("mitigated", "mitigated"), ("undetermined", "undetermined"),
        ("not_affected", "not affected"), ("eol", "vuln+EOL"),
    ],
    "months": [
        ("key", "months"), ("name", "behind the newest update"), ("exchange", "Exchange"),
        ("exchange_pct", "%"), ("vulnerable", "vulnerable"), ("kev", "KEV"), ("eol", "EOL"),
        ("exact", "exact"),
    ],
    "kev": [
        ("ip", "ip"), ("port", "port"), ("country", "cc"), ("organisation", "organisation"),
        ("build", "build"), ("kev_cves", "known-exploited CVEs"),
        ("months_behind", "mo behind"), ("sus_behind", "SUs behind"),
    ],
    "host": [
        ("ip", "ip"), ("port", "port"), ("country", "cc"), ("build", "build"),
        ("first_seen", "first seen"), ("last_seen", "last seen"),
        ("vulnerable_now", "vuln"), ("vulnerable_since", "since"),
        ("days_vulnerable", "days"), ("patched_transitions", "patched"),
        ("regressions", "regressed"), ("months_behind", "mo behind"),
    ],
    "compromise": [
        ("key", "key"), ("name", "name"), ("checked", "checked"),
        ("compromised", "compromised"), ("compromised_pct", "% comp."),
        ("share_pct", "% of all comp."), ("unknown", "unknown"), ("clean", "clean"),
        ("vulnerable", "vulnerable"), ("mitigated", "mitigated"), ("eomt", "EOMT"),
        ("proxynotshell_rewrite", "PNS rule"),
    ],
    "compromise-cve": [
        ("key", "CVE"), ("judged", "judged"), ("vulnerable", "vulnerable"),
        ("mitigated", "mitigated"), ("mitigated_pct", "% mitigated"), ("patched", "patched"),
        ("undetermined", "undetermined"), ("settled", "settled"), ("conflicts", "conflicts"),
    ],
    "compromise-host": [
        ("ip", "ip"), ("port", "port"), ("country", "cc"), ("organisation", "organisation"),
        ("shells", "shells"), ("shapes", "shapes"), ("proxylogon", "ProxyLogon"),
        ("proxyshell", "ProxyShell"), ("proxynotshell", "PNS rule"),
    ],
    "scan": [
        ("scan_id", "scan"), ("started_at", "started"), ("status", "status"),
        ("shards", "shards"), ("targets_done", "targets"), ("complete_pct", "% done"),
        ("hosts", "hosts"), ("exchange", "Exchange"), ("vulnerable", "vuln"),
        ("vulnerable_pct", "% vuln"), ("eol", "EOL"), ("kev", "KEV"),
        ("median_months_behind", "median mo"),
    ],
    "remediation": [
        ("key", "key"), ("hosts_notified", "notified"), ("first_notified", "since"),
        ("still_vulnerable", "still vuln"), ("not_rechecked", "not rechecked"),
        ("fixed", "fixed"), ("fixed_pct", "% fixed"), ("median_days_to_fix", "median days"),
        ("reminders", "reminders"), ("escalated", "escalated"),
    ],
}  # fmt: skip

# Left out first when a table is wider than the screen.
_DROP_ORDER = (
    "regressions", "patched_transitions", "first_seen", "behind_cu_pct", "cu_no_sus_pct",
    "sus_behind",
    "eol_pct", "exchange_pct", "undetermined", "status", "exact", "name", "eol", "cvss",
    "complete_pct", "behind_sus_pct", "started_at", "vulnerable_pct", "organisation",
    "months_behind", "proxynotshell_rewrite", "eomt", "clean", "shapes", "proxynotshell",
    "proxyshell", "port", "exchange", "build",
)  # fmt: skip
_DATES = {"first_seen", "last_seen", "vulnerable_since", "started_at", "first_notified"}
# Cells that may hold more than the default 200 characters (every KEV CVE of one host).
_WIDE = {"kev_cves": 400}
# Columns wrapped over several lines rather than widening the table past this (one CVE id a
# line): one host with many KEV CVEs must not push every other column off a narrow screen.
_FOLD_AT = {"kev_cves": 15}

# Columns whose values must never be folded mid-value (an address cut in two misleads).
_NO_WRAP = {
    "ip", "port", "key", "country", "scan_id", "build", "first_seen", "last_seen",
    "vulnerable_since", "started_at", "shards", "kev_added",
}  # fmt: skip

_LAG_NOTE = (
    "Patch lag as of the scan's day {day}: median months behind the newest update of the"
    " host's product line; % ≥{sus} SU: at least {sus} update(s) of its CU behind; % ≥{months}"
    " mo: at least {months} months behind; % no SUs: its CU no longer receives security"
    " updates; % old CU: not on the newest CU (of hosts on supported lines).  A CU-level"
    " build counts as its CU's newest update (the least it can be)."
)


def columns_for(kind: str, thresholds: Thresholds) -> list[tuple[str, str]]:
    """The table columns of a report kind, headers naming the thresholds in use."""
    return [
        (name, head.format(sus=thresholds.sus, months=thresholds.months))
        for name, head in _COLUMNS[kind]
    ]


def source_fields(store: Store, scan_ids: Sequence[str] | None) -> dict[str, str]:
    srcs = enrichment.sources(store, scan_ids)
    return {
        "geo_source": "; ".join(srcs["country"]) or "no enrichment",
        "asn_source": "; ".join(srcs["asn"]) or "no enrichment",
        "constituency_source": "; ".join(srcs["constituency"]) or "none",
    }


def footnote_of(fields: dict[str, str]) -> str:
    return (
        f"Country: {fields['geo_source']}. AS: {fields['asn_source']}."
        f" Constituency: {fields['constituency_source']}."
    )


def emit(
    rows: list[dict[str, Any]],
    columns: list[tuple[str, str]],
    fmt: str,
    output: str | None,
    *,
    title: str,
    footnote: str,
) -> None:
    """Write rows as table/json/csv to `output` (stdout when None)."""
    if fmt == "json":
        text = json.dumps(rows, indent=2, default=str) + "\n"
    elif fmt == "csv":
        buffer = io.StringIO()
        names = list(dict.fromkeys([c for c, _ in columns] + [k for r in rows[:1] for k in r]))
        writer = csv.DictWriter(
            buffer, fieldnames=names, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            # Spreadsheets run cells that start like a formula (OWASP's CSV injection rule).
            writer.writerow({k: neutralise(_cell(v)) for k, v in row.items()})
        text = buffer.getvalue()
    else:
        # Compact enough for 80 columns: no vertical rules, dates without their time, values
        # that must stay whole (addresses, keys) never folded, and the least useful columns
        # left out when the screen is too narrow for all (JSON and CSV keep every field).
        console = (
            Console(highlight=False)
            if output is None
            else Console(file=io.StringIO(), width=160, highlight=False, color_system=None)
        )
        cells = [
            [for_terminal(_table_cell(c, row.get(c)), _WIDE.get(c, 200)) for c, _ in columns]
            for row in rows
        ]
        keep = fit_columns(columns, cells, console.width)
        table = Table(
            title=for_terminal(title, 300),
            caption=for_terminal(footnote, 1500),
            caption_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        for i in keep:
            name, head = columns[i]
            if name in _NO_WRAP:
                table.add_column(head, no_wrap=True)
            else:
                table.add_column(head, overflow="fold")
        for line in cells:
            table.add_row(*(line[i] for i in keep))
        console.print(table)
        if output is None:
            return
        text = console.file.getvalue()  # type: ignore[attr-defined]
    if output is None:
        click.echo(text, nl=False)
    else:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)


def fit_columns(columns: list[tuple[str, str]], cells: list[list[str]], width: int) -> list[int]:
    """Indexes of the columns to show so that the table fits `width` characters."""
    sizes = [
        min(
            max([len(head), *(len(line[i]) for line in cells)]),
            _FOLD_AT.get(name, 10_000),
        )
        for i, (name, head) in enumerate(columns)
    ]
    keep = list(range(len(columns)))

    def total() -> int:
        return sum(sizes[i] for i in keep) + 3 * len(keep) + 1  # rich's rules and padding

    for name in _DROP_ORDER:
        if total() <= width:
            break
        keep = [i for i in keep if columns[i][0] != name]
    return keep


def _table_cell(column: str, value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)  # wraps between items on a narrow screen
    text = _cell(value)
    if column in _DATES and len(text) >= 10:
        return text[:10]  # the day; JSON and CSV keep the full time
    return text


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def compromise_rows(
    store: Store, scan: str, by: str, country: str | None, limit: int | None
) -> tuple[list[dict[str, Any]], list[tuple[str, str]], str]:
    """The rows, columns and title of `--view compromise`."""
    from exwatch.report import compromise

    if by == "cve":
        rows = compromise.cve_view(store, scan, country=country)
        return rows, _COLUMNS["compromise-cve"], f"Checked hosts per CVE, scan {scan}"
    if by == "host":
        rows = compromise.host_view(store, scan, country=country, limit=limit)
        return rows, _COLUMNS["compromise-host"], f"Compromised hosts, scan {scan}"
    groups, total = compromise.group_view(store, scan, by, country=country, limit=limit)
    rows = [{**g.to_json(), "scan_id": scan} for g in groups]
    head = compromise.headline(total, groups, by)
    return rows, _COLUMNS["compromise"], f"Compromise per {by}, scan {scan}: {head}"


@click.command("report")
@db_option
@click.option("--scan", "scan_id", help="Scan to report on (default: the latest).")
@click.option(
    "--by",
    type=click.Choice(BY_CHOICES),
    default="country",
    show_default=True,
    help="Group by; `host` lists each host's history, `scan` the trend across scans.",
)
@click.option(
    "--view",
    type=click.Choice(("counts", "compromise")),
    default="counts",
    show_default=True,
    help="compromise: what the opt-in checks (scan --check) found: compromised hosts per"
    " country/asn/sector/organisation (with each group's share of all), mitigated vs"
    " vulnerable per CVE (--by cve), the compromised hosts (--by host).",
)
@click.option("--country", help="Only this country (ISO 3166-1 alpha-2, e.g. BE).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
@click.option(
    "--vulnerable-days",
    type=click.IntRange(min=0),
    help="With --by host: only hosts still vulnerable after at least N days.",
)
@click.option(
    "--kev",
    "kev_only",
    is_flag=True,
    help="With --by cve: only CVEs in CISA's Known Exploited Vulnerabilities catalog.",
)
@click.option(
    "--behind-sus",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Patch lag shares count hosts at least N security updates of their CU behind.",
)
@click.option(
    "--behind-months",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Patch lag shares count hosts at least N months behind the newest update.",
)
@click.option(
    "--remediation",
    is_flag=True,
    help="With --by organisation|sector|country: hosts notified (exwatch notify), still"
    " vulnerable at later scans, fixed, days to fix.",
)
@enrichment_options
def report(
    db_path: str,
    scan_id: str | None,
    by: str,
    view: str,
    country: str | None,
    fmt: str,
    output: str | None,
    limit: int | None,
    vulnerable_days: int | None,
    kev_only: bool,
    behind_sus: int,
    behind_months: int,
    remediation: bool,
    geo_db: str | None,
    asn_db: str | None,
    constituency: str | None,
    rdns: bool,
) -> int:
    """Report on the store: counts per group for one scan, host histories, or the trend.

    Groups (country, asn, sector, organisation, version) carry their KEV count and patch lag;
    `--by cve` gives each CVE's KEV mark, CVSS and fix with its hosts per verdict; `--by
    months` the months-behind distribution; `--by kev` the hosts with a known-exploited CVE.
    Every output states the country and AS sources (table footnote, `geo_source` field).
    `--format html` writes the offline report (map, charts, tables) and ignores --by.
    Results not yet enriched are enriched first with the sources given here (see `enrich`).
    """
    if vulnerable_days is not None and by != "host":
        raise UsageError("--vulnerable-days only applies with --by host")
    if kev_only and by != "cve":
        raise UsageError("--kev only applies with --by cve (--by kev lists the hosts)")
    thresholds = Thresholds(sus=behind_sus, months=behind_months)
    if remediation and (by not in ("organisation", "sector", "country") or fmt == "html"):
        raise UsageError("--remediation applies with --by organisation, sector or country")
    if view == "compromise" and by in ("version", "scan") and fmt != "html":
        raise UsageError(
            "--view compromise groups by country, asn, sector, organisation, cve or host"
        )
    aggregate.country_code(country)  # a bad --country is refused before anything is read
    with open_db(db_path) as store:
        scan = aggregate.resolve_scan(store, scan_id)
        every_scan = fmt == "html" or by in ("host", "scan") or remediation
        fill_missing(
            store, geo_db, asn_db, constituency, rdns, scan_ids=None if every_scan else [scan]
        )
        if (remediation or fmt == "html") and not store.read_only:
            from exwatch.notify.cases import refresh

            refresh(store)  # notified hosts' cases follow every stored scan
        if fmt == "html":
            from exwatch.report.html import render_html

            page = render_html(store, scan, country=country, thresholds=thresholds)
            if output is None:
                click.echo(page, nl=False)
            else:
                with open(output, "w", encoding="utf-8") as handle:
                    handle.write(page)
                click.echo(f"wrote {output}", err=True)
            return 0
        if remediation:
            from exwatch.report.remediation import remediation as remediation_rows

            fields = source_fields(store, None)
            rows = [{**r, **fields} for r in remediation_rows(store, by, country=country)]  # type: ignore[arg-type]
            emit(
                rows[:limit] if limit else rows,
                _COLUMNS["remediation"],
                fmt,
                output,
                title=f"Remediation after notification, per {by}"
                + (f", country {country.upper()}" if country else ""),
                footnote="Cases of exwatch notify, brought up to date with every stored scan;"
                " days to fix run from the first message to the first later scan that showed"
                " the fix (an upper bound). " + footnote_of(fields),
            )
            return 0
        lag_note = ""
        if view == "compromise":
            rows, columns, title = compromise_rows(store, scan, by, country, limit)
            fields = source_fields(store, [scan])
            rows = [{**r, **fields} for r in rows]
        elif by == "host":
            history = trends.host_history(
                store, country=country, vulnerable_days=vulnerable_days, limit=limit
            )
            fields = source_fields(store, None)
            rows = [{**h, **fields} for h in history]
            kind = "host"
            title = "Exchange hosts across all scans"
        elif by == "scan":
            fields = source_fields(store, None)
            trend = trends.scan_trend(store, country=country, thresholds=thresholds)
            rows = [{**t, **fields} for t in trend]
            kind = "scan"
            title = "Trend across scans (shards: present/of; targets recorded)"
        elif by == "months":
            fields = source_fields(store, [scan])
            buckets = aggregate.months_distribution(store, scan, country=country)
            rows = [{**b.to_json(), "scan_id": scan, **fields} for b in buckets]
            kind = "months"
            day = aggregate.scan_day(store, scan)
            title = f"Months behind the newest update of the product line, scan {scan}"
            lag_note = (
                f" As of the scan's day {day}; a CU-level build counts as its CU's newest"
                " update (exact: hosts whose exact build is known)."
            )
        elif by == "kev":
            fields = source_fields(store, [scan])
            hosts = kev_hosts(store, scan, country=country, limit=limit)
            rows = [{**h.to_json(), "scan_id": scan, **fields} for h in hosts]
            kind = "kev"
            title = f"Exchange hosts with a known-exploited CVE (CISA KEV), scan {scan}"
        elif by == "cve":
            fields = source_fields(store, [scan])
            found = cve_report(store, scan, country=country, kev_only=kev_only, limit=limit)
            rows = [{**c.to_json(), "scan_id": scan, **fields} for c in found]
            kind = "cve"
            title = f"Per {'known-exploited ' if kev_only else ''}CVE, scan {scan}"
        else:
            groups = aggregate.group_counts(
                store,
                scan,
                by,  # type: ignore[arg-type]
                country=country,
                limit=limit,
                thresholds=thresholds,
            )
            fields = source_fields(store, [scan])
            rows = aggregate.group_rows_json(groups, scan_id=scan, **fields)
            kind = "group"
            title = f"Per {by}, scan {scan}"
            day = aggregate.scan_day(store, scan)
            lag_note = " " + _LAG_NOTE.format(day=day, sus=thresholds.sus, months=thresholds.months)
        if view != "compromise":
            columns = columns_for(kind, thresholds)
        if country:
            title += f", country {country.upper()}"
        footnote = footnote_of(fields) + lag_note
        emit(rows, columns, fmt, output, title=title, footnote=footnote)
    return 0
