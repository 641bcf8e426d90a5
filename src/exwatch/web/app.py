"""The ASGI application: pages (server-rendered Jinja2) and the same data as JSON under /api/.

Every page is one function that reads the store and returns its data; the HTML route renders
it with a template, the /api/ route returns it as JSON, and a table's `?format=csv` returns
the rows shown as CSV.  Store reads run in Starlette's thread pool, each request with its
own store handle (stores.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.resources import files
from typing import Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from exwatch import __version__, untrusted
from exwatch.errors import ExwatchError, StoreError, UsageError
from exwatch.report import aggregate, trends
from exwatch.report.compromise import mitigated_counts
from exwatch.report.html import page_environment
from exwatch.report.svgcharts import bar_chart, line_chart
from exwatch.report.worldmap import SHAPES_SOURCE, choropleth_svg, country_name
from exwatch.store import Store
from exwatch.web import groups, memo, names
from exwatch.web.auth import Credentials
from exwatch.web.cves_view import CVE_COLUMNS, cve_detail, cve_rows
from exwatch.web.facts import scan_builds
from exwatch.web.groups_view import (
    NONE,
    asn_value,
    country_value,
    group_listing,
    per_country,
    totals,
)
from exwatch.web.hosts_view import COMPROMISE, SHOW, host_detail, host_listing
from exwatch.web.listing import Listing, Paging
from exwatch.web.notifications_view import available, notification_listing, per_organisation
from exwatch.web.openapi import document
from exwatch.web.scans_view import (
    DIFF_COLUMNS,
    diff_groups,
    diff_hosts,
    prepare_diff,
    scan_listing,
    scan_progress,
)
from exwatch.web.search_view import classify, direct, text_matches
from exwatch.web.security import Guard
from exwatch.web.stores import StorePool

log = logging.getLogger("exwatch.web")


class NotFound(ExwatchError):
    """A page for something the store does not hold."""


@dataclass
class Result:
    """What one page function returns."""

    template: str
    data: dict[str, Any]
    listing: Listing | None = None
    view: dict[str, Any] = field(default_factory=dict)  # for the template only
    redirect: str | None = None


Handler = Callable[[Store, Request], Result]


def _q(request: Request) -> dict[str, str]:
    return dict(request.query_params)


def _known(store: Store, scan_id: str) -> str:
    if not store.query("SELECT 1 FROM scans WHERE scan_id = ?", [scan_id]):
        raise NotFound(f"no scan {scan_id[:80]!r} in the store")
    return scan_id


def _scan(store: Store, request: Request) -> str:
    wanted = request.query_params.get("scan")
    if wanted:
        return _known(store, wanted)
    return aggregate.resolve_scan(store, None)


def _scans(store: Store) -> list[dict[str, Any]]:
    d = store.dialect
    return store.dicts(
        f"SELECT scan_id, status, {d.iso('started_at')} AS started_at FROM scans"  # noqa: S608
        " ORDER BY started_at DESC NULLS LAST, scan_id DESC LIMIT 200"
    )


def _stamps(store: Store) -> tuple[Any, ...]:
    return tuple(
        store.query(
            "SELECT scan_id, enrich_generation, enriched, answered, status FROM scans"
            " ORDER BY scan_id"
        )
    )


# -- pages -----------------------------------------------------------------------------


def overview(store: Store, request: Request) -> Result:
    scan_id = _scan(store, request)
    head = totals(store, scan_id)
    countries = per_country(store, scan_id)
    info = aggregate.scan_info(store, scan_id)
    stamps = _stamps(store)
    trend = memo.memo(("trend", store.location, stamps), lambda: trends.scan_trend(store))
    cves = memo.memo(
        ("cves", store.location, scan_id, stamps),
        lambda: [r.to_json() for r in aggregate.group_counts(store, scan_id, "cve", limit=15)],
    )
    sectors = memo.memo(
        ("sectors", store.location, scan_id, stamps),
        lambda: [r.to_json() for r in aggregate.group_counts(store, scan_id, "sector")],
    )
    # Targets recorded, from the per-shard counters (counting 10 M rows costs a second).
    scanned = int(
        store.scalar(
            "SELECT coalesce(sum(recorded), 0) FROM scan_parts WHERE scan_id = ?", [scan_id]
        )
        or 0
    ) or store.result_count(scan_id)
    data = {
        "scan": info,
        "scanned": scanned,
        "totals": head,
        "countries": [
            {**c, "hosts": int(c["hosts"]), "exchange": int(c["exchange"]),
             "vulnerable": int(c["vulnerable"]), "kev": int(c["kev"]),
             "country": c["country"] or NONE, "name": country_name(c["country"])}
            for c in sorted(countries, key=lambda c: -int(c["vulnerable"]))
        ],
        "trend": trend,
        "cves": cves,
        "sectors": sectors,
    }  # fmt: skip
    charts = {
        "map": Markup(  # noqa: S704 - worldmap.py escapes every text it writes
            choropleth_svg(
                {str(c["country"]): int(c["vulnerable"]) for c in countries if c["country"]},
                known={str(c["country"]): int(c["hosts"]) for c in countries if c["country"]},
                label="vulnerable Exchange servers",
            )
        ),
        "trend": Markup(  # noqa: S704 - svgcharts escapes labels
            line_chart(
                [str(t["started_at"] or t["scan_id"])[:10] for t in trend],
                [
                    ("Exchange", [int(t["exchange"]) for t in trend]),
                    ("vulnerable", [int(t["vulnerable"]) for t in trend]),
                    ("end of life", [int(t["eol"]) for t in trend]),
                ],
                title="Across scans",
            )
        ),
        "cves": Markup(  # noqa: S704 - svgcharts escapes labels
            bar_chart(
                [(str(r["key"]), int(r["vulnerable"]), int(r["hosts"])) for r in cves],
                title="Hosts vulnerable per CVE",
                total_label="assessed",
            )
        ),
        "sectors": Markup(  # noqa: S704 - svgcharts escapes labels
            bar_chart(
                [(str(r["key"]), int(r["vulnerable"]), int(r["exchange"])) for r in sectors],
                title="Vulnerable Exchange servers per sector",
            )
        ),
    }
    return Result(
        "overview.html.j2",
        data,
        view={"charts": charts, "scans": _scans(store), "shapes_source": SHAPES_SOURCE},
    )


def countries(store: Store, request: Request) -> Result:
    scan_id = _scan(store, request)
    listing = group_listing(store, scan_id, "country", _q(request))
    return Result(
        "groups.html.j2",
        {"scan_id": scan_id, **listing.to_json()},
        listing,
        view={"title": "Countries", "level": "country", "crumbs": []},
    )


def country(store: Store, request: Request) -> Result:
    scan_id = _scan(store, request)
    code = country_value(request.path_params["cc"])
    by = request.query_params.get("by", "asn")
    if by not in ("asn", "sector"):
        raise UsageError("by is asn or sector")
    query = _q(request)
    # One path serves both tables: a sort by the other table's key column is no error, the
    # table keeps its default order (the API document lists the keys of both).
    if query.get("sort") in ({"sector"} if by == "asn" else {"asn", "as_name"}):
        query.pop("sort")
        query.pop("dir", None)
    listing = group_listing(store, scan_id, by, query, country=code)
    name = "unknown country" if code == NONE else country_name(code)
    return Result(
        "groups.html.j2",
        {"scan_id": scan_id, "country": code, "by": by, **listing.to_json()},
        listing,
        view={
            "title": f"{name} ({code})" if code != NONE else name,
            "level": by,
            "country": code,
            "head": totals(store, scan_id, code),
            "tabs": True,
            "crumbs": [("Countries", "/countries")],
        },
    )


def organisations(store: Store, request: Request) -> Result:
    scan_id = _scan(store, request)
    code = country_value(request.path_params["cc"])
    kind = request.path_params["kind"]
    raw = request.path_params["key"]
    if kind == "asn":
        try:
            value = asn_value(raw)
        except UsageError:
            raise NotFound(f"no AS {raw[:40]!r}") from None
        listing = group_listing(store, scan_id, "asn_org", _q(request), country=code, asn=value)
        title = "unknown AS" if value == NONE else f"AS{value}"
    elif kind == "sector":
        value = raw
        listing = group_listing(
            store, scan_id, "sector_org", _q(request), country=code, sector=value
        )
        title = f"sector {value}"
    else:
        raise NotFound("no such grouping")
    return Result(
        "groups.html.j2",
        {"scan_id": scan_id, "country": code, kind: value, **listing.to_json()},
        listing,
        view={
            "title": f"Organisations in {title}, {code}",
            "level": "asn_org" if kind == "asn" else "sector_org",
            "country": code,
            "kind": kind,
            "key": value,
            "crumbs": [
                ("Countries", "/countries"),
                (code, f"/countries/{quote(code, safe='')}?by={kind}"),
            ],
        },
    )


def hosts(store: Store, request: Request) -> Result:
    scan_id = _scan(store, request)
    listing = host_listing(store, scan_id, _q(request))
    f = listing.filters
    crumbs = [("Countries", "/countries")]
    if "country" in f:
        crumbs.append((f["country"], f"/countries/{quote(f['country'], safe='')}"))
        if "asn" in f:
            crumbs.append(
                (f"AS{f['asn']}" if f["asn"] != NONE else "unknown AS",
                 f"/countries/{quote(f['country'], safe='')}/asn/{quote(f['asn'], safe='')}")
            )  # fmt: skip
        elif "sector" in f:
            crumbs.append(
                (f["sector"],
                 f"/countries/{quote(f['country'], safe='')}/sector/{quote(f['sector'], safe='')}")
            )  # fmt: skip
    return Result(
        "hosts.html.j2",
        {"scan_id": scan_id, **listing.to_json()},
        listing,
        view={
            "title": "Hosts",
            "crumbs": crumbs,
            "show_choices": SHOW,
            "compromise_choices": COMPROMISE,
        },
    )


def host(store: Store, request: Request) -> Result:
    try:
        detail = host_detail(store, request.path_params["ip"])
    except UsageError as exc:
        raise NotFound(str(exc)) from None
    if not detail["sightings"]:
        raise NotFound(f"no scan holds {detail['ip']}")
    return Result("host.html.j2", detail, view={"title": detail["ip"]})


def scans(store: Store, request: Request) -> Result:
    listing = scan_listing(store, _q(request))
    return Result("scans.html.j2", listing.to_json(), listing, view={"title": "Scans"})


def scan(store: Store, request: Request) -> Result:
    progress = scan_progress(store, _known(store, request.path_params["scan_id"]))
    return Result("scan.html.j2", progress, view={"title": f"Scan {progress['scan_id']}"})


def diff(store: Store, request: Request) -> Result:
    ids = store.scan_ids()
    a = request.query_params.get("a") or (ids[-2] if len(ids) > 1 else None)
    b = request.query_params.get("b") or (ids[-1] if ids else None)
    if a is None or b is None:
        raise UsageError("a diff needs two scans; the store holds fewer")
    _known(store, a)
    _known(store, b)
    by = request.query_params.get("by", "country")
    rows = diff_groups(store, a, b, by)
    changes = diff_hosts(store, a, b, _q(request))
    return Result(
        "diff.html.j2",
        {"a": a, "b": b, "by": by, "groups": rows, "hosts": changes.to_json()},
        changes,
        view={"title": "Diff", "scans": _scans(store), "group_columns": DIFF_COLUMNS},
    )


def cves(store: Store, request: Request) -> Result:
    scan_id = _scan(store, request)
    rows = cve_rows(store, scan_id, _q(request))
    return Result(
        "cves.html.j2",
        {"scan_id": scan_id, "rows": rows, "total": len(rows)},
        view={"title": "CVEs", "columns": CVE_COLUMNS},
    )


def cve(store: Store, request: Request) -> Result:
    scan_id = _scan(store, request)
    try:
        detail = cve_detail(request.path_params["cve"])
    except UsageError as exc:
        raise NotFound(str(exc)) from None
    counts = [
        r.to_json()
        for r in aggregate.group_counts(store, scan_id, "cve")
        if str(r.key) == detail["cve"]
    ]
    if counts:
        counts[0]["mitigated"] = mitigated_counts(store, scan_id)[detail["cve"]]
    detail["hosts"] = counts[0] if counts else None
    detail["scan_id"] = scan_id
    return Result("cve.html.j2", detail, view={"title": detail["cve"]})


def search(store: Store, request: Request) -> Result:
    text = (request.query_params.get("q") or "").strip()
    if not text:
        return Result("search.html.j2", {"q": "", "kind": None}, view={"title": "Search"})
    scan_id = _scan(store, request)
    kind, value = classify(text)
    target = direct(kind, value, scan_id)
    data: dict[str, Any] = {"q": text, "kind": kind, "scan_id": scan_id, "goto": target}
    if target is None:
        data.update(text_matches(store, scan_id, value))
    return Result("search.html.j2", data, view={"title": "Search"}, redirect=target)


def notifications(store: Store, request: Request) -> Result:
    if not available(store):
        empty = Listing([], [], 0, Paging())
        return Result(
            "notifications.html.j2",
            {"available": False, "rows": [], "total": 0},
            empty,
            view={"title": "Notifications"},
        )
    listing = notification_listing(store, _q(request))
    return Result(
        "notifications.html.j2",
        {"available": True, "per_organisation": per_organisation(store), **listing.to_json()},
        listing,
        view={"title": "Notifications"},
    )


PAGES: list[tuple[str, str, Handler]] = [
    ("/", "overview", overview),
    ("/countries", "countries", countries),
    ("/countries/{cc}", "country", country),
    ("/countries/{cc}/{kind}/{key}", "organisations", organisations),
    ("/hosts", "hosts", hosts),
    ("/hosts/{ip}", "host", host),
    ("/scans", "scans", scans),
    ("/scans/{scan_id}", "scan", scan),
    ("/diff", "diff", diff),
    ("/cves", "cves", cves),
    ("/cves/{cve}", "cve", cve),
    ("/search", "search", search),
    ("/notifications", "notifications", notifications),
]


# -- rendering -------------------------------------------------------------------------


def _environment() -> Environment:
    env = page_environment("exwatch.web")
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["visible"] = visible
    env.globals["urlencode"] = urlencode
    env.globals["link"] = _link
    env.globals["NONE"] = NONE
    env.globals["version"] = __version__
    return env


# Controls (terminal escapes) and bidirectional overrides that would reorder what an
# analyst reads ("mail.<RLO>exe.evil" shows as "mail.live.exe"): shown as \uXXXX instead.
def visible(value: object) -> str:
    """A server string with its control and direction characters made visible, tabs and
    line breaks kept (the template still escapes the result)."""
    return untrusted.visible(value, "\t\n")


def _link(path: str, query: Mapping[str, str] | None = None, **updates: Any) -> str:
    """`path` with the current query changed by `updates` (None removes a key)."""
    merged = {k: v for k, v in (query or {}).items() if k != "format"}
    for key, value in updates.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    text = urlencode(sorted(merged.items()))
    return path + ("?" + text if text else "")


def _without_nul(request: Request) -> Request:
    """NUL in a parameter becomes U+FFFD, as in stored strings (PostgreSQL text has no NUL)."""
    if "\x00" not in unquote(request.url.query) and not any(
        "\x00" in str(v) for v in request.path_params.values()
    ):
        return request
    scope = dict(request.scope)
    items = [
        (k.replace("\x00", "\ufffd"), v.replace("\x00", "\ufffd"))
        for k, v in request.query_params.multi_items()
    ]
    scope["query_string"] = urlencode(items).encode("ascii")
    scope["path_params"] = {
        k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v
        for k, v in request.path_params.items()
    }
    return Request(scope, request.receive)


def _json_default(value: object) -> Any:
    if isinstance(value, Decimal):  # PostgreSQL sums
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _dumps(data: Any) -> bytes:
    return json.dumps(data, default=_json_default, ensure_ascii=False).encode("utf-8")


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return _dumps(content)


def create_app(
    db: str,
    *,
    credentials: Credentials | None = None,
    hosts: list[str] | None = None,
) -> Starlette:
    """The web application over the store named by `db` (a --db value)."""
    pool = StorePool(db)
    env = _environment()
    creds = credentials or Credentials()
    has_notifications = {"value": False}

    def call(handler: Handler, request: Request) -> Result:
        with pool.session() as store:
            has_notifications["value"] = available(store)
            return handler(store, request)

    def endpoint(handler: Handler, api: bool) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            request = _without_nul(request)
            fmt = request.query_params.get("format")
            try:
                result = await run_in_threadpool(call, handler, request)
            except UsageError as exc:
                return _error(request, api, 400, str(exc))
            except NotFound as exc:
                return _error(request, api, 404, str(exc))
            except StoreError as exc:
                log.warning("store error: %s", exc)
                return _error(request, api, 503, f"the store cannot answer now: {exc}")
            if fmt == "csv":
                if result.listing is None:
                    return _error(request, api, 400, "this page has no table to download")
                name = handler.__name__
                return Response(
                    result.listing.to_csv(),
                    media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="exwatch-{name}.csv"'},
                )
            if api or fmt == "json":
                return JSON(result.data)
            if result.redirect is not None:
                return RedirectResponse(result.redirect, status_code=303)
            context = {**result.data, **result.view, "data": result.data}
            return _html(request, result.template, {**context, "listing": result.listing})

        run.__name__ = f"{'api_' if api else ''}{handler.__name__}"
        return run

    def _html(
        request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        page = env.get_template(template).render(
            **context,
            request_path=request.url.path,
            query=dict(request.query_params),
            nav_notifications=has_notifications["value"],
            store_location=pool.display,
        )
        return HTMLResponse(page, status_code=status)

    def _error(request: Request, api: bool, status: int, message: str) -> Response:
        if api or request.query_params.get("format") in ("json", "csv"):
            return JSON({"error": message}, status_code=status)
        return _html(
            request,
            "error.html.j2",
            {"status": status, "message": message, "title": "Error"},
            status,
        )

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    async def openapi(request: Request) -> Response:
        return JSON(document())

    async def api_index(request: Request) -> Response:
        return _html(request, "api.html.j2", {"title": "API", "doc": document()})

    async def not_found(request: Request, exc: Exception) -> Response:
        api = request.url.path.startswith("/api/")
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return _error(request, api, status, "not found" if status == 404 else "not allowed")

    async def server_error(request: Request, exc: Exception) -> Response:
        # Never a traceback for the user; the log keeps it.
        log.exception("error answering %s", request.url.path)
        api = request.url.path.startswith("/api/")
        return _error(request, api, 500, "internal error (the server log has the details)")

    routes: list[Any] = []
    for path, _name, handler in PAGES:
        routes.append(Route(path, endpoint(handler, False), methods=["GET", "HEAD"]))
        api_path = "/api" + (path if path != "/" else "/overview")
        routes.append(Route(api_path, endpoint(handler, True), methods=["GET", "HEAD"]))
    routes.append(Route("/api/openapi.json", openapi, methods=["GET", "HEAD"]))
    routes.append(Route("/api", api_index, methods=["GET", "HEAD"]))
    routes.append(Route("/favicon.ico", favicon, methods=["GET", "HEAD"]))
    static = files("exwatch.web") / "static"
    routes.append(Mount("/static", StaticFiles(directory=str(static)), name="static"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            pool.close()

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: not_found, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.pool = pool
    wrapped = Guard(app, credentials=creds, hosts=hosts or [])
    app.state.guard = wrapped
    return wrapped  # type: ignore[return-value]


def warm(db: str, say: Callable[[str], None] = log.info) -> None:
    """Before the server answers: enrich results that lack it (as `exwatch report` would,
    with the sources each scan was enriched with before), create the indexes pages need,
    and build the report rollups of every scan (the overview's trend), the latest scan's
    drill-down counts and search names, and the diff of the latest two scans (kept in this
    process), so that first views are fast too."""
    from exwatch.enrich import Enricher
    from exwatch.report import enrichment, rollup
    from exwatch.web import indexes

    def make_enricher(options: enrichment.EnrichOptions) -> Any:
        return Enricher(
            geo_db=options.geo_db,
            asn_db=options.asn_db,
            constituency=options.constituency,
            rdns=options.rdns,
        )

    pool = StorePool(db)
    try:
        with pool.session() as store:
            if store.read_only:
                say("the store is read-only: counts are computed in memory on first view")
                return
            outcome = enrichment.prepare(store, make_enricher, enrichment.EnrichOptions())
            if outcome.rows:
                say(f"enriched {outcome.rows:,} results")
            if indexes.ensure(store):
                say("indexes for the web pages are in place")
            for scan_id in store.scan_ids():
                rollup.ensure(store, scan_id)
            latest = store.latest_scan_id()
            if latest is not None:
                groups.ensure(store, latest)
                scan_builds(store, latest, groups.stamp_of(store, latest))  # host lists' lag
                if names.usable(store):
                    names.ensure(store, latest)
            ids = store.scan_ids()
            if len(ids) > 1:  # the diff page's default pair: the latest two scans
                prepare_diff(store, ids[-2], ids[-1])
    finally:
        pool.close()


__all__ = ["PAGES", "create_app", "warm"]
