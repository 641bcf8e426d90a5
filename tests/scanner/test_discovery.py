"""The shapes issue 12 names, one loopback server each: closed OWA (stripped headers,
forms auth off), other mail servers that speak Exchange's protocols, Exchange Online,
Exchange 2003, custom logon pages, the export tool under the CU folder, honeypots and
impostors, and several servers behind one balancer.  Each test also pins the requests
the scanner made, since the request budget is part of the contract."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from exwatch.scan.host import HostSettings, scan_host

from .conftest import Canned, HttpServerState, Request, Route, Servers, response
from .exchange_sim import EXPORTTOOL, NTLM_B64, challenge_for, exchange_routes, manifest

FAST = HostSettings(connect_timeout=0.5, tls_timeout=0.5, read_timeout=0.5, host_timeout=3.0)
WINDOWS_AUTH = [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")]
IIS_404 = "<html><head><title>404 - File or directory not found.</title></head></html>"


def scan(
    server_ctx: ssl.SSLContext, routes: dict[str, Route], default: Route | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Scan one server; `default` answers paths missing from `routes` (else a plain 404)."""

    async def main() -> tuple[dict[str, Any], HttpServerState]:
        table = dict(routes)
        async with Servers(server_ctx) as servers:
            if default is not None:
                table = _CatchAll(table, default)
            port, state = await servers.http(table)
            record = await scan_host("127.0.0.1", port, None, FAST)
        return record, state

    record, state = asyncio.run(main())
    return record, [r.path for r in state.requests]


class _CatchAll(dict[str, Route]):
    """A route table whose `get` falls back to one handler for every other path."""

    def __init__(self, routes: dict[str, Route], default: Route) -> None:
        super().__init__(routes)
        self.default = default

    def get(self, key: str, fallback: Any = None) -> Any:
        return super().get(key) or self.default


def iis(status: int, extra: list[tuple[str, str]] | None = None, body: str = "") -> Route:
    reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}.get(status, "X")
    headers = [("Server", "Microsoft-IIS/10.0"), *(extra or [])]
    return lambda r: response(status, headers, body, reason=reason)


def ews_route(os_ntlm: str = NTLM_B64) -> Route:
    def ews(req: Request) -> bytes:
        offers = [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")]
        if req.headers.get("authorization", "").startswith("NTLM "):
            offers = [("WWW-Authenticate", f"NTLM {os_ntlm}"), ("WWW-Authenticate", "Negotiate")]
        return response(401, [("Server", "Microsoft-IIS/10.0"), *offers], reason="Unauthorized")

    return ews


def test_closed_owa_with_every_exchange_header_stripped_is_found_by_the_pattern(
    server_ctx: ssl.SSLContext,
) -> None:
    """nginx in front: OWA and ECP 404, Autodiscover/EWS/ActiveSync proxied with Windows
    authentication but without X-OWA-Version or X-FEServer; a random path is nginx's 404."""
    nginx_404 = lambda r: response(404, [("Server", "nginx")], "<h1>404 Not Found</h1>")  # noqa: E731
    routes = {
        "/autodiscover/autodiscover.xml": lambda r: response(
            401, [("Server", "nginx"), *WINDOWS_AUTH], reason="Unauthorized"
        ),
        "/EWS/Exchange.asmx": ews_route(),
        "/Microsoft-Server-ActiveSync": lambda r: response(
            401, [("Server", "nginx"), ("WWW-Authenticate", 'Basic realm="mail"')]
        ),
    }
    record, paths = scan(server_ctx, routes, default=nginx_404)
    ex = record["exchange"]
    assert ex is not None, record
    assert ex["build"] is None
    assert "auth-endpoints" in ex["sources"]
    assert "ntlm" in ex["sources"]
    assert record["ntlm"]["netbios_computer"] == "EXCH01"
    # logon, Autodiscover, EWS, the random path: enough; then the build probes, each once
    assert paths[:3] == ["/owa/auth/logon.aspx", "/autodiscover/autodiscover.xml", EWS]
    assert paths[3].count("/") == 1  # the random control path
    assert len(paths[3]) == 17
    assert len(paths) == len(set(paths))
    assert "/Microsoft-Server-ActiveSync" not in paths  # not needed once the pattern held
    # OWA is closed (its logon page was a plain 404): /owa/service, /owa/ and errorFE.aspx
    # are not asked; ECP may be published on its own, so the export tool is
    assert paths[4:] == [EXPORTTOOL]


EWS = "/EWS/Exchange.asmx"


def test_forms_auth_off_exchange_2010_is_found(server_ctx: ssl.SSLContext) -> None:
    """Forms-based authentication off: /owa/ asks for Windows authentication, no
    X-FEServer (2010); with Autodiscover's and a 404 elsewhere that is Exchange."""
    auth = [("Server", "Microsoft-IIS/7.5"), *WINDOWS_AUTH, ("WWW-Authenticate", 'Basic realm="m"')]
    challenge = lambda r: response(401, auth, IIS_404, reason="Unauthorized")  # noqa: E731
    routes = {"/owa/auth/logon.aspx": challenge, "/autodiscover/autodiscover.xml": challenge}
    routes[EWS] = challenge
    record, paths = scan(server_ctx, routes, default=iis(404, body=IIS_404))
    assert record["exchange"] is not None
    assert record["exchange"]["sources"][0] == "auth-endpoints"
    assert paths[:2] == ["/owa/auth/logon.aspx", "/autodiscover/autodiscover.xml"]


@pytest.mark.parametrize("server", ["Kerio Connect 9.4.1", "nginx"])
def test_mail_servers_speaking_exchange_protocols_with_basic_only_are_not_exchange(
    server_ctx: ssl.SSLContext, server: str
) -> None:
    """Kerio Connect and Zimbra publish Autodiscover, EWS and ActiveSync with Basic
    authentication: no Windows authentication, no Exchange.  Three requests."""
    basic = lambda r: response(  # noqa: E731
        401, [("Server", server), ("WWW-Authenticate", 'Basic realm="Kerio Connect"')]
    )
    routes = {"/autodiscover/autodiscover.xml": basic, EWS: basic}
    routes["/Microsoft-Server-ActiveSync"] = basic
    record, paths = scan(server_ctx, routes)
    assert record["exchange"] is None
    assert record["suspect"] is None
    assert paths == ["/owa/auth/logon.aspx", "/autodiscover/autodiscover.xml", EWS]


def test_windows_auth_everywhere_is_not_exchange(server_ctx: ssl.SSLContext) -> None:
    """SharePoint (or any IIS site) behind Windows authentication answers every path with
    401: the random path says so, and it is not Exchange."""
    record, paths = scan(server_ctx, {}, default=iis(401, WINDOWS_AUTH))
    assert record["exchange"] is None
    assert paths[:3] == ["/owa/auth/logon.aspx", "/autodiscover/autodiscover.xml", EWS]
    assert len(paths) == 4  # the random path ended it; no ActiveSync
    assert paths[3] not in ("/Microsoft-Server-ActiveSync",)


def test_exchange_online_front_end_is_recorded_apart(server_ctx: ssl.SSLContext) -> None:
    headers = [
        ("Server", "Microsoft-IIS/10.0"),
        ("Location", "https://outlook.office365.com/owa/"),
        ("X-CalculatedBETarget", "GV1P191MB2243.EURP191.PROD.OUTLOOK.COM"),
        ("X-BEServer", "GV1P191MB2243"),
        ("X-FEServer", "PH7PR17CA0070"),
        ("X-FEEFZInfo", "PHX"),
        ("X-OWA-Version", "15.20.7587.36"),
    ]
    routes = {"/owa/auth/logon.aspx": lambda r: response(302, headers, reason="Found")}
    record, paths = scan(server_ctx, routes)
    assert record["exchange"] is None
    assert record["cves"] == {}
    online = record["exchange_online"]
    assert online["product"] == "Exchange Online"
    assert {"online-be-target", "online-efz"} <= set(online["sources"])
    assert online["front_ends"] == ["PH7PR17CA0070"]
    assert online["build"] == "15.20.7587.36"
    assert paths == ["/owa/auth/logon.aspx"]  # settled by the first request


def test_exchange_2003_is_found_on_iis_6(server_ctx: ssl.SSLContext) -> None:
    page = (
        "<HTML><HEAD><TITLE>Microsoft Outlook Web Access</TITLE></HEAD><BODY>"
        '<FORM action="/exchweb/bin/auth/owaauth.dll" method="POST" name="logonForm">'
        '<INPUT type="hidden" name="destination" value="https://mail/exchange">'
        "</FORM></BODY></HTML>"
    )
    iis6 = [("Server", "Microsoft-IIS/6.0")]
    routes = {"/exchweb/bin/auth/owalogon.asp": lambda r: response(200, iis6, page)}
    record, paths = scan(server_ctx, routes, default=lambda r: response(404, iis6, IIS_404))
    ex = record["exchange"]
    assert ex["product"] == "Exchange Server 2003"
    assert ex["build"] is None
    assert ex["eol"] is True
    assert record["cves"] == {}
    assert paths[:2] == ["/owa/auth/logon.aspx", "/exchweb/bin/auth/owalogon.asp"]


def test_iis_10_never_gets_the_2003_request(server_ctx: ssl.SSLContext) -> None:
    record, paths = scan(server_ctx, {}, default=iis(404, body=IIS_404))
    assert "/exchweb/bin/auth/owalogon.asp" not in paths
    assert record["exchange"] is None


def test_custom_logon_page_build_comes_from_errorfe(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    custom = (
        "<html><head><!-- OwaPage = ASP.auth_logon_aspx --><title>Contoso Mail</title>"
        '<link rel="stylesheet" href="/owa/auth/custom/portal.css"></head></html>'
    )
    errorfe = (
        '<html><link rel="shortcut icon" href="/owa/auth/15.1.2507/themes/resources/favicon.ico">'
        "</html>"
    )
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version=None)
    front = [("Server", "Microsoft-IIS/10.0"), ("X-FEServer", "EXCH01")]
    routes["/owa/auth/logon.aspx"] = lambda r: response(200, front, custom)
    routes["/owa/auth/errorFE.aspx"] = lambda r: response(200, front, errorfe)
    record, paths = scan(server_ctx, routes)
    ex = record["exchange"]
    assert ex["build"] == "15.1.2507"
    assert ex["precision"] == "cu"
    assert "owa-path" in ex["sources"]
    assert paths.count("/owa/auth/errorFE.aspx") == 1


def test_exporttool_under_the_cu_folder(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """/ecp/Current/ reached (a 404 from Exchange) but empty; the CU from the page
    (15.1.2176, whose first build is 15.1.2176.2) names the folder: one request."""
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version=None)
    routes[EXPORTTOOL] = lambda r: response(404, [("X-FEServer", "EXCH01")], "", reason="NF")
    folder = EXPORTTOOL.replace("/Current/", "/15.1.2176.2/")
    routes[folder] = lambda r: response(200, [("X-FEServer", "EXCH01")], manifest("15.1.2176.14"))
    record, paths = scan(server_ctx, routes)
    assert record["exchange"]["build"] == "15.1.2176.14"
    assert record["exchange"]["sources"][0] == "exporttool"
    assert [p for p in paths if p.startswith("/ecp/")] == [EXPORTTOOL, folder]


def test_blocked_ecp_gets_no_cu_folder_request(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version=None)
    routes[EXPORTTOOL] = lambda r: response(403, [("Server", "BigIP")], "", reason="Forbidden")
    record, paths = scan(server_ctx, routes)
    assert record["exchange"]["build"] == "15.1.2176"
    assert [p for p in paths if p.startswith("/ecp/")] == [EXPORTTOOL]


def _flask_honeypot(canned: Callable[[str], Canned]) -> tuple[dict[str, Route], Route]:
    """joda32/owa-honeypot's shape: an IIS 7.5 header on its routes, Werkzeug elsewhere."""
    page = canned("positive/exchange2016-logon.http")
    iis75 = [("Server", "Microsoft-IIS/7.5"), ("X-Powered-By", "ASP.NET")]
    werkzeug = [("Server", "Werkzeug/2.0.3 Python/3.9.2")]
    routes: dict[str, Route] = {
        "/owa/auth/logon.aspx": lambda r: page.encode(
            extra=iis75, drop=("server", "x-owa-version", "x-feserver", "x-powered-by")
        ),
        "/owa/auth/15.1.2176/themes/resources/favicon.ico": lambda r: response(
            200, [*iis75, ("Content-Type", "image/x-icon")], "\x00\x00\x01\x00"
        ),
    }
    return routes, lambda r: response(500, werkzeug, "Internal Server Error", reason="ISE")


def test_flask_honeypot_is_suspect_not_exchange(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes, default = _flask_honeypot(canned)
    record, _ = scan(server_ctx, routes, default=default)
    assert record["exchange"] is None
    assert record["cves"] == {}
    suspect = record["suspect"]
    assert {"iis-version", "foreign-server"} <= set(suspect["checks"])
    assert suspect["build"] == "15.1.2176"
    assert suspect["product"] == "Exchange Server 2016"
    assert all(isinstance(r, str) and r for r in suspect["reasons"])


def test_catch_all_honeypot_is_suspect(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """Every path answers the (plausible) 2019 page: the random path and the favicon say so."""
    page = canned("positive/exchange2019-proxied-logon.http")
    record, paths = scan(server_ctx, {}, default=lambda r: page.encode())
    assert record["exchange"] is None
    assert {"catch-all", "resource-is-page"} <= set(record["suspect"]["checks"])
    assert "/owa/auth/15.2.1118/themes/resources/favicon.ico" in paths


def test_page_only_exchange_with_its_static_files_stays_exchange(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """The same thin evidence on a real server: 404 elsewhere, the favicon is there."""
    page = canned("positive/exchange2019-proxied-logon.http")
    icon = "/owa/auth/15.2.1118/themes/resources/favicon.ico"
    routes = {
        "/owa/auth/logon.aspx": lambda r: page.encode(),
        icon: lambda r: response(200, [("Content-Type", "image/x-icon")], "\x00\x00\x01\x00"),
    }
    record, paths = scan(server_ctx, routes)
    assert record["suspect"] is None
    assert record["exchange"]["build"] == "15.2.1118"
    assert icon in paths


def test_exchange_online_build_on_a_non_microsoft_host_is_suspect(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """A phishing kit's headers: X-OWA-Version 15.20 (Exchange Online's train), an
    X-FEServer name, but none of Exchange Online's infrastructure headers."""
    page = canned("positive/exchange2019-proxied-logon.http")
    fake = [("Server", "Microsoft-IIS/10.0"), ("X-OWA-Version", "15.20.7595.016")]
    fake.append(("X-FEServer", "OUTLOOK-WEB-01"))
    record, _ = scan(server_ctx, {"/owa/auth/logon.aspx": lambda r: page.encode(extra=fake)})
    assert record["exchange"] is None
    assert record["exchange_online"] is None
    assert "online-build" in record["suspect"]["checks"]


def test_three_servers_behind_a_round_robin_balancer(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """Every request goes to the next server: the sweep asks the logon page until nothing
    new answers; every build is reported and the oldest is judged."""
    backends = [("EXCH01", "15.1.2507.39"), ("EXCH02", "15.1.2375.37"), ("EXCH03", "15.1.2507.6")]
    turn = itertools.cycle(range(3))
    page = canned("positive/exchange2016-logon.http")
    text = page.body.decode()

    def answer(make: Callable[[str, str, str], bytes]) -> Route:
        def route(req: Request) -> bytes:
            name, build = backends[next(turn)]
            cu = build.rsplit(".", 1)[0]
            return make(name, build, cu)

        return route

    def headers(name: str, build: str) -> list[tuple[str, str]]:
        return [("Server", "Microsoft-IIS/8.5"), ("X-FEServer", name), ("X-OWA-Version", build)]

    routes: dict[str, Route] = {
        "/owa/auth/logon.aspx": answer(
            lambda n, b, cu: response(200, headers(n, b), text.replace("15.1.2176", cu))
        ),
        EWS: answer(lambda n, b, cu: response(401, [*headers(n, b), *WINDOWS_AUTH])),
    }
    record, paths = scan(server_ctx, routes)
    ex = record["exchange"]
    assert ex["builds_seen"] == ["15.1.2375.37", "15.1.2507.6", "15.1.2507.39"]
    assert ex["build"] == "15.1.2375.37"
    assert paths.count("/owa/auth/logon.aspx") >= 3
    assert len(paths) <= 2 + 6  # logon, EWS, at most six sweeps


def test_one_server_gets_no_sweep(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9")
    record, paths = scan(server_ctx, routes)
    assert paths == ["/owa/auth/logon.aspx", EWS]
    assert record["exchange"]["builds_seen"] == ["15.1.2176.9"]


def test_exchange_sim_challenge_matches_the_page_product(canned: Callable[[str], Canned]) -> None:
    """The simulator's own NTLM answer is plausible for each corpus page (else every test
    above would see a suspect for the wrong reason)."""
    assert challenge_for(canned("positive/exchange2010-logon.http")) != NTLM_B64
    assert challenge_for(canned("positive/exchange-se-logon.http")) == NTLM_B64


def test_sweep_continues_until_every_front_end_showed_a_build(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """No X-OWA-Version anywhere: only each server's own logon page shows its CU, so the
    sweep goes on while a front end seen (on any response) has shown no build yet."""
    backends = [("EXCH01", "15.1.2507"), ("EXCH02", "15.1.2375")]
    turn = itertools.cycle(range(2))
    text = canned("positive/exchange2016-logon.http").body.decode()

    def route(with_page: bool, status: int) -> Route:
        def answer(req: Request) -> bytes:
            name, cu = backends[next(turn)]
            headers = [("Server", "Microsoft-IIS/8.5"), ("X-FEServer", name)]
            if status == 401:
                headers += WINDOWS_AUTH
            return response(status, headers, text.replace("15.1.2176", cu) if with_page else "")

        return answer

    routes = {"/owa/auth/logon.aspx": route(True, 200), EWS: route(False, 401)}
    record, paths = scan(server_ctx, routes, default=route(False, 404))
    assert record["exchange"]["builds_seen"] == ["15.1.2375", "15.1.2507"]
    assert record["exchange"]["build"] == "15.1.2375"
    assert paths.count("/owa/auth/logon.aspx") >= 2
