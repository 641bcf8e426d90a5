"""scan_host against loopback TLS servers that imitate Exchange front-ends (and others)."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from exwatch.errors import UsageError
from exwatch.model import Status
from exwatch.probes import PROBES, Probe, Risk, Stage, select
from exwatch.scan.host import DEFAULT_USER_AGENT, HostSettings, scan_host
from exwatch.scan.job import probe_ids

from .conftest import Canned, HttpServerState, Request, Servers, response
from .exchange_sim import EXPORTTOOL, alternating, exchange_routes

Run = Callable[[Coroutine[Any, Any, Any]], Any]
FAST = HostSettings(connect_timeout=0.5, tls_timeout=0.5, read_timeout=0.5, host_timeout=3.0)

# Every case runs under each transport (`--transport python|wreq`).
pytestmark = pytest.mark.usefixtures("transport")
RECORD_KEYS = {
    "schema_version", "ip", "port", "hostname", "timestamp", "duration_ms", "status", "error",
    "exchange", "exchange_online", "suspect", "cves", "tls", "ntlm", "headers", "http_status",
    "checks",
}  # fmt: skip
EXCHANGE_KEYS = {
    "build",
    "precision",
    "product",
    "cu",
    "su",
    "eol",
    "known",
    "sources",
    "builds_seen",
    "patch_lag",  # knowledge: exposure.py and tests/knowledge/test_record_fields.py
    "basis",
}


async def scan_routes(
    server_ctx: ssl.SSLContext,
    routes: dict[str, Callable[[Request], bytes]],
    *,
    hostname: str | None = None,
    settings: HostSettings = FAST,
    tls: bool = True,
) -> tuple[dict[str, Any], HttpServerState]:
    async with Servers(server_ctx) as servers:
        port, state = await servers.http(routes, tls=tls)
        record = await scan_host("127.0.0.1", port, hostname, settings)
    return record, state


def check_shape(record: dict[str, Any]) -> None:
    assert set(record) == RECORD_KEYS
    json.dumps(record)  # the record is one JSON line
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
    assert record["schema_version"] == 1
    assert record["status"] in {s.value for s in Status}
    if record["exchange"] is not None:
        assert set(record["exchange"]) == EXCHANGE_KEYS


def test_exchange_2016_full_sequence_one_connection(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned], transport: str
) -> None:
    routes = exchange_routes(
        canned("positive/exchange2016-logon.http"),
        owa_version="15.1.2176.9",
        exporttool="15.1.2176.9",
    )
    record, state = run(scan_routes(server_ctx, routes))
    check_shape(record)
    assert record["status"] == "success"
    assert record["error"] is None
    assert record["http_status"] == 200
    ex = record["exchange"]
    assert ex["build"] == "15.1.2176.9"
    assert ex["precision"] == "su"
    assert ex["product"] == "Exchange Server 2016"
    assert ex["builds_seen"] == ["15.1.2176.9"]
    assert ex["sources"][:2] == ["x-owa-version", "owa-path"]
    assert {"owa-logon-page", "x-feserver", "ntlm"} <= set(ex["sources"])
    assert record["cves"], "a known build gets verdicts"
    assert record["ntlm"] == {
        "netbios_domain": "CONTOSO",
        "netbios_computer": "EXCH01",
        "dns_domain": "contoso.local",
        "dns_computer": "exch01.contoso.local",
        "dns_tree": "contoso.local",
        "os_version": "6.3.9600",
    }
    tls = record["tls"]
    assert tls["subject_cn"] == "EXCH01"
    assert "exch01.contoso.local" in tls["san"]
    assert "127.0.0.1" in tls["san"]
    assert tls["issuer"] == tls["subject"]
    assert tls["not_before"] == "2024-01-01T00:00:00Z"
    assert re.fullmatch(r"[0-9a-f]{64}", tls["sha256"])
    # wreq reports the certificate but not the negotiated version (performance.md)
    assert tls["version"] in (("TLSv1.2", "TLSv1.3") if transport == "python" else (None,))
    assert record["headers"]["x-feserver"] == "EXCH01"
    assert record["headers"]["x-owa-version"] == "15.1.2176.9"
    # One TLS connection carries the whole sequence (keep-alive); once the header gave the
    # four-part build, the other build probes are spared.
    assert state.connections == 1
    # The logon page is asked for directly (no /owa/ redirect); its header gave the
    # four-part build, so only the NTLM request follows.
    paths = [r.path for r in state.requests]
    assert paths == ["/owa/auth/logon.aspx", "/EWS/Exchange.asmx"]


def test_build_probes_continue_until_a_four_part_build_is_read(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes = exchange_routes(
        canned("positive/exchange2016-logon.http"), owa_version=None, exporttool="15.1.2176.9"
    )
    record, state = run(scan_routes(server_ctx, routes))
    assert record["exchange"]["build"] == "15.1.2176.9"
    assert record["exchange"]["sources"][:2] == ["exporttool", "owa-path"]
    paths = [r.path for r in state.requests]
    assert paths == ["/owa/auth/logon.aspx", EXPORTTOOL, "/EWS/Exchange.asmx"]


@pytest.mark.parametrize(
    ("corpus", "header", "product", "build", "precision"),
    [
        ("exchange2013-logon.http", "15.0.1497.26", "Exchange Server 2013", "15.0.1497.26", "su"),
        ("exchange2013-logon.http", None, "Exchange Server 2013", "15.0.1497", "cu"),
        ("exchange-se-logon.http", "15.2.2562.17", "Exchange Server SE", "15.2.2562.17", "su"),
        ("exchange-se-logon.http", None, "Exchange Server SE", "15.2.2562", "cu"),
        ("exchange2019-proxied-logon.http", None, "Exchange Server 2019", "15.2.1118", "cu"),
    ],
)
def test_owa_versions_with_and_without_header(
    server_ctx: ssl.SSLContext,
    canned: Callable[[str], Canned],
    corpus: str,
    header: str | None,
    product: str,
    build: str,
    precision: str,
) -> None:
    routes = exchange_routes(canned(f"positive/{corpus}"), owa_version=header)
    record, _ = asyncio.run(scan_routes(server_ctx, routes))
    check_shape(record)
    assert record["status"] == "success"
    assert record["exchange"]["build"] == build
    assert record["exchange"]["precision"] == precision
    assert record["exchange"]["product"] == product
    if header is None:
        assert "x-owa-version" not in record["headers"]
        assert "x-owa-version" not in record["exchange"]["sources"]


def test_exchange_2010_four_part_path(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes = exchange_routes(
        canned("positive/exchange2010-logon.http"), owa_version=None, feserver=None
    )
    record, _ = asyncio.run(scan_routes(server_ctx, routes))
    ex = record["exchange"]
    assert ex["build"] == "14.3.123.3"
    assert ex["precision"] == "su"
    assert ex["product"] == "Exchange Server 2010"
    assert ex["sources"][0] == "owa-path"


def test_proxy_stripping_headers_exporttool_gives_su(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes = exchange_routes(
        canned("positive/exchange2019-proxied-logon.http"),
        owa_version=None,
        feserver=None,
        exporttool="15.2.1118.7",
    )
    record, _ = asyncio.run(scan_routes(server_ctx, routes))
    ex = record["exchange"]
    assert ex["build"] == "15.2.1118.7"
    assert ex["precision"] == "su"
    assert ex["sources"][:2] == ["exporttool", "owa-path"]  # the CU-level path agrees
    assert ex["builds_seen"] == ["15.2.1118.7"]
    assert record["headers"].get("x-feserver") is None


def test_load_balancer_alternating_builds_all_reported(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes = exchange_routes(
        canned("positive/exchange2016-logon.http"),
        owa_version=alternating("15.1.2176.9", "15.1.2308.8"),
        feserver=alternating("EXCH01", "EXCH02"),
    )
    record, _ = run(scan_routes(server_ctx, routes))
    ex = record["exchange"]
    assert ex["builds_seen"] == ["15.1.2176.9", "15.1.2308.8"]
    # The page's CU (15.1.2176) agrees with 15.1.2176.9: two sources beat one.
    assert ex["build"] == "15.1.2176.9"
    assert ex["sources"][:2] == ["x-owa-version", "owa-path"]


@pytest.mark.parametrize(
    ("corpus", "server"),
    [
        ("negative/iis-404.http", "Microsoft-IIS/10.0"),
        ("negative/nginx-welcome.http", "nginx/1.22.1"),
    ],
)
def test_non_exchange_costs_two_requests(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned], corpus: str, server: str
) -> None:
    """A host whose logon page settles nothing gets exactly one more request, Autodiscover
    (OWA may be closed while Autodiscover, EWS and ActiveSync stay published), whatever its
    Server header; a 404 there ends it.  (Before: one request, or four on IIS.)"""
    page = canned(corpus)
    record, state = run(scan_routes(server_ctx, {"/owa/auth/logon.aspx": lambda r: page.encode()}))
    check_shape(record)
    assert record["status"] == "success"
    assert record["http_status"] == page.status
    assert record["exchange"] is None
    assert record["cves"] == {}
    assert record["tls"]["subject_cn"] == "EXCH01"
    assert record["headers"]["server"] == server
    assert state.connections == 1
    assert [r.path for r in state.requests] == [
        "/owa/auth/logon.aspx",
        "/autodiscover/autodiscover.xml",
    ]


def test_plain_http_port(server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]) -> None:
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9")
    settings = HostSettings(connect_timeout=0.5, read_timeout=0.5, host_timeout=3.0, tls=False)
    record, _ = asyncio.run(scan_routes(server_ctx, routes, settings=settings, tls=False))
    assert record["status"] == "success"
    assert record["tls"] is None
    assert record["exchange"]["build"] == "15.1.2176.9"


def test_host_header_sni_and_user_agent(
    run: Run, cert_pem: Any, canned: Callable[[str], Canned]
) -> None:
    seen_sni: list[str | None] = []
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert_pem)

    def record_sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        seen_sni.append(name)

    ctx.sni_callback = record_sni
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9")

    record, state = run(scan_routes(ctx, routes, hostname="mail.contoso.example"))
    port = record["port"]
    assert seen_sni == ["mail.contoso.example"]
    assert {r.headers["host"] for r in state.requests} == {f"mail.contoso.example:{port}"}
    assert {r.headers["user-agent"] for r in state.requests} == {DEFAULT_USER_AGENT}
    assert record["hostname"] == "mail.contoso.example"
    assert state.requests[0].path == "/owa/auth/logon.aspx"

    seen_sni.clear()
    settings = HostSettings(
        read_timeout=0.5, user_agent="exwatch-test (contact: cert@example.invalid)"
    )
    record, state = run(scan_routes(ctx, routes, settings=settings))
    assert seen_sni == [None]
    assert state.requests[0].headers["host"] == f"127.0.0.1:{record['port']}"
    assert state.requests[0].headers["user-agent"] == "exwatch-test (contact: cert@example.invalid)"


def test_redirect_to_other_host_not_followed(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9")
    routes["/owa/auth/logon.aspx"] = lambda r: response(
        302,
        [
            ("Location", "https://elsewhere.example/owa/auth/logon.aspx?url=x&reason=0"),
            ("X-FEServer", "E1"),
        ],
        reason="Found",
    )
    record, state = asyncio.run(scan_routes(server_ctx, routes))
    assert all(r.headers["host"].startswith("127.0.0.1") for r in state.requests)
    # not followed; X-FEServer made it Exchange, and the follow-ups read the build here
    assert [r.path for r in state.requests][:2] == ["/owa/auth/logon.aspx", EXPORTTOOL]
    assert record["http_status"] == 302
    assert record["exchange"]["build"] == "15.1.2176.9"


def test_server_closing_each_connection_reconnects(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes = exchange_routes(
        canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9", close_each=True
    )
    record, state = run(scan_routes(server_ctx, routes))
    assert record["status"] == "success"
    assert record["error"] is None
    # the logon page and EWS with NTLM: the header's four-part build spares the other
    # build probes; each request on its own connection
    assert len(state.requests) == 2
    assert state.connections == 2
    assert record["ntlm"] is not None


def test_idle_keepalive_close_is_retried(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """A server that drops the connection after each response without saying so."""
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9")

    async def main() -> tuple[dict[str, Any], int]:
        served = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ")[1].decode()
            path = target.split("?")[0]
            req = Request("GET", target, {"host": "127.0.0.1"})
            route = routes.get(path)
            writer.write(route(req) if route else response(404, reason="Not Found"))
            await writer.drain()
            served += 1
            writer.close()  # no Connection: close header: the client learns on reuse

        async with Servers(server_ctx) as servers:
            port = await servers.start(handler)
            record = await scan_host("127.0.0.1", port, None, FAST)
        return record, served

    record, served = run(main())
    assert record["status"] == "success"
    assert record["error"] is None
    assert served == 2
    assert record["exchange"]["build"] == "15.1.2176.9"


def test_follow_ups_can_be_switched_off(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9")
    settings = HostSettings(read_timeout=0.5, follow_ups=False)
    record, state = asyncio.run(scan_routes(server_ctx, routes, settings=settings))
    assert [r.path for r in state.requests] == ["/owa/auth/logon.aspx"]
    assert record["exchange"]["build"] == "15.1.2176.9"
    assert record["ntlm"] is None


def test_probe_selection_refuses_unknown_and_intrusive(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="unknown probe"):
        HostSettings(probes=("http-owa", "http-exploit"))
    assert HostSettings(probes=("http-owa",)).probes == ("http-owa",)

    async def nothing(ctx: Any) -> None:
        return None

    risky = Probe(
        "http-behaviour", Risk.INTRUSIVE, (Stage.EXCHANGE,), ("GET /x",), "test only", nothing
    )
    import exwatch.probes as registry

    monkeypatch.setattr(registry, "PROBES", (*PROBES, risky))
    monkeypatch.setitem(registry.BY_ID, risky.id, risky)
    with pytest.raises(UsageError, match="intrusive"):
        HostSettings(probes=("http-owa", "http-behaviour"))
    assert HostSettings(probes=("http-behaviour",), allow_intrusive=True).allow_intrusive
    # the default selection never includes an intrusive probe
    assert "http-behaviour" not in {p.id for p in registry.select(None, allow_intrusive=False)}
    # the registered intrusive probes are the opt-in checks: CHECK stage only, never default
    assert all(
        p.risk is Risk.PASSIVE or (p.stages == (Stage.CHECK,) and not p.default) for p in PROBES
    )


def test_front_end_probe_is_opt_in(
    server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """`--add-probe http-frontend` adds a second /owa/ to the default sequence, nothing else
    (two front ends were seen, so the default balancer sweep asks the logon page again)."""
    assert "http-frontend" not in {p.id for p in select(None, allow_intrusive=False)}
    ids = probe_ids(["http-frontend"])
    assert ids is not None
    assert ids[-1] == "http-frontend"
    assert set(ids) == {p.id for p in select(None, allow_intrusive=False)} | {"http-frontend"}
    assert probe_ids([]) is None
    with pytest.raises(UsageError, match="unknown probe"):
        probe_ids(["http-nope"])

    routes = exchange_routes(
        canned("positive/exchange2016-logon.http"),
        owa_version="15.1.2176.9",
        feserver=alternating("EXCH01", "EXCH02"),
    )
    settings = HostSettings(read_timeout=0.5, probes=ids)
    record, state = asyncio.run(scan_routes(server_ctx, routes, settings=settings))
    assert [r.path for r in state.requests] == [
        "/owa/auth/logon.aspx",
        "/EWS/Exchange.asmx",
        "/owa/auth/logon.aspx",  # http-lb-sweep: EXCH01 again, nothing new, it stops
        "/owa/",  # one request, its redirect not followed: it is only asked for headers
    ]
    assert record["headers"]["x-feserver"] == "EXCH01"
    assert record["exchange"]["build"] == "15.1.2176.9"


def test_closed_owa_with_autodiscover_header_is_found(
    run: Run, server_ctx: ssl.SSLContext, canned: Callable[[str], Canned]
) -> None:
    """OWA closed (the logon page is an IIS 404), Autodiscover published: its 401 carries
    X-OWA-Version and X-FEServer, which settle it; the Exchange follow-ups run after."""
    iis = canned("negative/iis-404.http")
    routes = exchange_routes(canned("positive/exchange2016-logon.http"), owa_version="15.1.2176.9")
    routes["/owa/auth/logon.aspx"] = lambda r: iis.encode()
    record, state = run(scan_routes(server_ctx, routes))
    assert record["http_status"] == 404
    assert record["exchange"]["build"] == "15.1.2176.9"
    paths = [r.path for r in state.requests]
    assert paths == ["/owa/auth/logon.aspx", "/autodiscover/autodiscover.xml", "/EWS/Exchange.asmx"]
    assert record["ntlm"] is not None


def test_every_probe_has_a_place_in_its_stages_order() -> None:
    """A probe registered for a stage but missing from that stage's order would never run."""
    from exwatch.scan.host import DISCOVER_ORDER, EXCHANGE_ORDER

    orders = {Stage.DISCOVER: DISCOVER_ORDER, Stage.EXCHANGE: EXCHANGE_ORDER}
    for probe in PROBES:
        for stage in probe.stages:
            if stage in orders:
                assert probe.id in orders[stage], (probe.id, stage)
    for stage, order in orders.items():
        assert all(stage in BY_ID_ALL[i].stages for i in order), stage


BY_ID_ALL = {p.id: p for p in PROBES}
