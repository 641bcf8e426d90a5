"""The offline HTML report: one self-contained file (inline SVG, CSS and a few lines of JS).

Nothing is fetched when it is opened: the map and charts are inline SVG, the sorting script is
inline and pinned by a Content-Security-Policy hash, so even a string that escaped escaping
could not run script.  Jinja2 autoescape escapes every value; SVG built in Python escapes
with `for_html` and is marked safe only after that.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from exwatch import __version__
from exwatch.report import aggregate, enrichment, remediation, rollup, trends
from exwatch.report.cves import cve_report
from exwatch.report.kev import kev_hosts
from exwatch.report.lag import DEFAULT_THRESHOLDS, Thresholds
from exwatch.report.svgcharts import bar_chart, line_chart
from exwatch.report.worldmap import SHAPES_SOURCE, choropleth_svg
from exwatch.store import Store


def _months(value: float | None) -> str:
    """A count or a median (33.5) of months or updates; a dash where unknown."""
    if value is None:
        return "–"
    return f"{value:g}" if isinstance(value, float) else f"{value:,}"


def page_environment(package: str) -> Environment:
    """Templates of `package`/templates as the HTML report and the web pages render them:
    everything escaped, an unknown name an error, counts and shares with a dash where
    unknown."""
    env = Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v: "–" if v is None else f"{v:,}"
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.1f} %"
    return env


def _environment() -> Environment:
    env = page_environment("exwatch.report")
    env.filters["months"] = _months
    return env


def _script() -> tuple[Markup, Markup]:
    text = (files("exwatch.report") / "templates" / "sort.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    # Both are ours (a shipped file and its base64 hash), never data from a server.
    return Markup(text), Markup(f"'sha256-{digest}'")  # noqa: S704


def build_context(
    store: Store,
    scan_id: str,
    *,
    country: str | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, Any]:
    """Every number and table the report shows (also handy for tests)."""
    t = thresholds
    info = aggregate.scan_info(store, scan_id)
    head = aggregate.totals(store, scan_id, country=country, thresholds=t)
    by_country = aggregate.group_counts(store, scan_id, "country", country=country, thresholds=t)
    sectors = aggregate.group_counts(store, scan_id, "sector", country=country, thresholds=t)
    versions = aggregate.group_counts(
        store, scan_id, "version", country=country, limit=25, thresholds=t
    )
    cves = cve_report(store, scan_id, country=country, limit=25)
    orgs = aggregate.group_counts(
        store, scan_id, "organisation", country=country, limit=100, thresholds=t
    )
    asns = aggregate.group_counts(store, scan_id, "asn", country=country, limit=50, thresholds=t)
    trend = trends.scan_trend(store, country=country, thresholds=t)
    hosts = aggregate.exchange_hosts(store, scan_id, country=country, limit=500)
    longest = trends.host_history(store, country=country, vulnerable_days=0, limit=100)
    srcs = enrichment.sources(store, [scan_id])
    from exwatch.report.compromise import html_context

    # reportviews: patch lag and the KEV-only view
    months = aggregate.months_distribution(store, scan_id, country=country)
    kev_cves = cve_report(store, scan_id, country=country, kev_only=True)
    kev_list = kev_hosts(store, scan_id, country=country, limit=500)
    notified = remediation.host_cases(store, country=country)
    return {
        "compromise": html_context(store, scan_id, country=country),
        "scan": info,
        "country": country.upper() if country else None,
        "head": head,
        "scanned": aggregate.scanned_count(store, scan_id),
        "by_country": by_country,
        "sectors": sectors,
        "versions": versions,
        "cves": cves,
        "orgs": orgs,
        "asns": asns,
        "trend": trend,
        "hosts": hosts,
        "longest": longest,
        "geo_sources": srcs["country"] or ["no enrichment"],
        "constituency_sources": srcs["constituency"] or ["none"],
        "asn_sources": srcs["asn"] or ["no enrichment"],
        "shapes_source": SHAPES_SOURCE,
        "scan_day": aggregate.scan_day(store, scan_id).isoformat(),
        "thresholds": t,
        "months": months,
        "kev_cves": kev_cves,
        "kev_hosts": kev_list,
        "notified": notified,
        "remediation": remediation.remediation(store, country=country)[:50] if notified else [],
    }


def render_html(
    store: Store,
    scan_id: str,
    *,
    country: str | None = None,
    generated_at: datetime | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> str:
    ctx = build_context(store, scan_id, country=country, thresholds=thresholds)
    vulnerable_map = {str(r.key): r.vulnerable for r in ctx["by_country"] if r.key}
    hosts_map = {str(r.key): r.hosts for r in ctx["by_country"] if r.key}
    trend = ctx["trend"]
    labels = [str(t["started_at"] or t["scan_id"])[:10] for t in trend]
    script, script_hash = _script()
    charts = {
        "map": Markup(  # noqa: S704 - built by worldmap.py, which escapes every text
            choropleth_svg(vulnerable_map, known=hosts_map, label="vulnerable Exchange servers")
        ),
        "sectors": Markup(  # noqa: S704 - svgcharts escapes labels
            bar_chart(
                [(str(r.key), r.vulnerable, r.exchange) for r in ctx["sectors"]],
                title="Vulnerable Exchange servers per sector",
            )
        ),
        "versions": Markup(  # noqa: S704 - svgcharts escapes labels
            bar_chart(
                [
                    (str(r.key or rollup.BUILD_NOT_READ), r.vulnerable, r.exchange)
                    for r in ctx["versions"][:15]
                ],
                title="Exchange servers per build",
            )
        ),
        "cves": Markup(  # noqa: S704 - svgcharts escapes labels
            bar_chart(
                [(r.cve, r.vulnerable, r.assessed) for r in ctx["cves"][:15]],
                title="Hosts vulnerable per CVE",
                total_label="assessed",
            )
        ),
        "months": Markup(  # noqa: S704 - svgcharts escapes labels
            bar_chart(
                [(m.name, m.vulnerable, m.exchange) for m in ctx["months"]],
                title="Exchange servers by months behind the newest update",
            )
        ),
        "trend": Markup(  # noqa: S704 - svgcharts escapes labels
            line_chart(
                labels,
                [
                    ("Exchange", [t["exchange"] for t in trend]),
                    ("vulnerable", [t["vulnerable"] for t in trend]),
                    ("end of life", [t["eol"] for t in trend]),
                    ("known-exploited CVE", [t["kev"] for t in trend]),
                ],
                title="Across scans",
            )
        ),
    }
    if ctx["notified"]:
        charts["remediation"] = Markup(  # noqa: S704 - svgcharts escapes labels
            bar_chart(
                remediation.time_to_fix(ctx["notified"]),
                title="Time to patch after notification (hosts fixed within)",
                value_label="fixed",
                total_label="notified",
            )
        )
    template = _environment().get_template("report.html.j2")
    stamp = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return template.render(
        **ctx,
        charts=charts,
        script=script,
        script_hash=script_hash,
        generated_at=stamp,
        version=__version__,
    )


__all__ = ["build_context", "page_environment", "render_html"]
