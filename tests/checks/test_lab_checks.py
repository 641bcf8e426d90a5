"""The opt-in checks against the lab's real TLS servers (nginx and the Python backend):
every host's compromise and behavioural state, only when asked, only on Exchange, once."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exwatch.checks import catalogue, indicators
from exwatch.lab import Lab
from exwatch.lab.check import score
from exwatch.lab.compromise import COMPROMISE_KINDS
from exwatch.scan.host import HostSettings, scan_host
from exwatch.scan.job import ScanJob, execute

from ..lab.running import BACKENDS, NO_NGINX, free_port, running_lab
from ..lab.test_farm import _bound_pair, _exchange, _normal

pytestmark = pytest.mark.slow

BASE = "127.21.0.1"
ALL = list(catalogue.check_ids())


@pytest.fixture(scope="module", params=BACKENDS)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from running_lab(request, tmp_path_factory, hosts=160, seed=9, base=BASE)


def _scan(lab: Lab, tmp_path: Path, checks: list[str]) -> list[dict[str, Any]]:
    out = tmp_path / f"r-{len(checks)}.jsonl"
    job = ScanJob(
        specs=list(lab.cidr),
        port=lab.port,
        timeout=2.0,
        concurrency=100,
        allow_private=True,
        output=str(out),
        db=None,
        workers=1,
        checks=checks,
    )
    assert not execute(job).interrupted
    return [json.loads(line) for line in out.read_text("utf-8").splitlines()]


def test_every_host_reads_as_the_ground_truth_says(lab: Lab, tmp_path: Path) -> None:
    records = _scan(lab, tmp_path, ALL)
    result = score(records, lab.ground_truth)
    assert result.all_right, "\n".join(result.lines(30))
    truth = {ip: t for ip, t in lab.ground_truth.items() if "checks" in t}
    kinds = Counter(t["checks"]["compromise_kind"] for t in truth.values())
    assert set(COMPROMISE_KINDS) <= set(kinds), kinds
    readings = {(c, s) for t in truth.values() for c, s in t["checks"]["behaviour"].items()}
    for state in ("vulnerable", "not-vulnerable", "mitigated", "inconclusive"):
        assert ("proxylogon", state) in readings
    assert {("proxyshell", "vulnerable"), ("proxyshell", "not-vulnerable")} <= readings
    assert ("proxynotshell-mitigation", "mitigated") in readings
    by_ip = {r["ip"]: r for r in records}
    # zero compromised where every path answers 200 or a look-alike page answers
    for ip, t in truth.items():
        kind = t["checks"]["compromise_kind"]
        state = by_ip[ip]["checks"]["compromise"]["state"]
        if kind in ("catchall", "lookalike-page", "lookalike-errors"):
            assert state == "unknown", (ip, kind)
        if kind.startswith("shell") or kind == "catchall-shell":
            assert state == "compromised", (ip, kind)
    # a planted shell's evidence: the path, the shape, an excerpt and the build it leaks
    oab = next(
        by_ip[ip]["checks"]["compromise"]["findings"][0]
        for ip, t in truth.items()
        if t["checks"]["compromise_kind"] == "shell-oab"
    )
    assert oab["evidence"].startswith("ExternalUrl")
    assert len(oab["sha256"]) == 64
    assert re.fullmatch(
        r"Version 15\.\d \(Build \d+\.\d+\)", oab["extract"]["admin_display_version"]
    )
    # mitigated verdicts exist, and conflicts are listed rather than hidden
    verdicts = Counter(v for r in records for v in (r.get("cves") or {}).values())
    assert verdicts["mitigated"] > 0
    for r in records:
        for conflict in (r.get("checks") or {}).get("conflicts") or []:
            assert r["cves"][conflict["cve"]] == "vulnerable"


def test_a_host_is_checked_once_per_scan(lab: Lab) -> None:
    ip = next(
        ip
        for ip, t in lab.ground_truth.items()
        if t["kind"] == "exchange" and t["profile"] == "full"
    )
    checked: set[tuple[str, int]] = set()

    def claim(host: str, port: int) -> bool:
        fresh = (host, port) not in checked
        checked.add((host, port))
        return fresh

    settings = HostSettings(connect_timeout=2, tls_timeout=2, read_timeout=2, checks=tuple(ALL))

    async def twice() -> tuple[dict[str, Any], dict[str, Any]]:
        first = await scan_host(ip, lab.port, None, settings, claim)
        second = await scan_host(ip, lab.port, None, settings, claim)
        return first, second

    first, second = asyncio.run(twice())
    assert first["checks"]["ran"] == ALL
    assert first["checks"]["requests"] > len(indicators.load().paths)
    assert second["checks"]["ran"] == []
    assert second["checks"]["skipped"] == "already checked in this scan"
    assert second["checks"]["requests"] == 0
    assert second["exchange"]["build"] == first["exchange"]["build"]


# -- what goes over the wire (nginx logs every request) ------------------------------

_CHECK_PATHS = ("/owa/auth/x.js", "autodiscover.json", "/aspnet_client/")


@NO_NGINX
def test_checks_run_only_when_asked_and_only_on_exchange(tmp_path: Path) -> None:
    with Lab(
        hosts=60,
        port=free_port(),
        seed=4,
        base="127.21.64.1",
        workdir=tmp_path / "lab",
        backend="nginx",
        access_log=True,
    ) as lab:
        _scan(lab, tmp_path, [])
        log = lab.access_log_path
        passive = log.read_text("utf-8")
        assert passive
        assert not any(p in passive for p in _CHECK_PATHS)
        log.write_text("", "utf-8")  # nginx appends: start the checked scan's lines afresh
        records = _scan(lab, tmp_path, ALL)
        lines = log.read_text("utf-8").splitlines()
    by_ip = {r["ip"]: r for r in records}
    exchange = {ip for ip, r in by_ip.items() if r["exchange"]}
    requests: dict[str, Counter[str]] = {}
    for line in lines:
        ip, _status, request = line.split(" ", 2)
        path = request.strip('"').split(" ")[1]
        requests.setdefault(ip, Counter())[path] += 1
    for ip, r in by_ip.items():
        asked = requests.get(ip, Counter())
        check_lines = sum(n for p, n in asked.items() if any(c in p for c in _CHECK_PATHS))
        if ip not in exchange:
            assert check_lines == 0, (ip, r["checks"])
            assert r["checks"] is None or r["checks"]["ran"] == []
            continue
        # once per host: each known path once, the ProxyShell request once, the ProxyLogon
        # request once (twice with the control request only where it was aborted)
        for known in indicators.load().paths:
            assert asked[known.path] == 1, (ip, known.path)
        shell = [p for p in asked if "/mapi/nspi/" in p]
        assert [asked[p] for p in shell] == [1], ip
        aborted = r["checks"]["behaviour"]["proxylogon"]["state"] == "mitigated"
        assert asked["/owa/auth/x.js"] == (2 if aborted else 1), ip


@NO_NGINX
def test_both_backends_answer_the_check_requests_alike(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"hosts": 160, "seed": 9, "base": "127.21.128.1"}
    with (
        Lab(port=free_port(), workdir=tmp_path / "n", backend="nginx", **kw) as ngx,
        Lab(port=free_port(), workdir=tmp_path / "p", backend="python", **kw) as py,
    ):
        truth = {ip: t for ip, t in ngx.ground_truth.items() if "checks" in t}
        picked: dict[tuple[str, ...], str] = {}
        for ip, t in truth.items():
            c = t["checks"]
            key = (c["compromise_kind"], *c["mitigations"], *sorted(c["behaviour"].values()))
            picked.setdefault(key, ip)
        data = indicators.load()
        corpus = [
            b"GET /owa/auth/x.js HTTP/1.1\r\nHost: h\r\nCookie: X-AnonResource=true; "
            b"X-AnonResource-Backend=localhost/ecp/default.flt?~3; "
            b"X-BEResource=localhost/owa/auth/logon.aspx?~3;\r\nConnection: close\r\n\r\n",
            b"GET /autodiscover/autodiscover.json?@exwatch.invalid/mapi/nspi/?&Email=autodiscover"
            b"/autodiscover.json%3F@exwatch.invalid HTTP/1.1\r\nHost: h\r\n"
            b"Connection: close\r\n\r\n",
            b"GET /autodiscover/autodiscover.json?@x.invalid/owa/&Email=autodiscover/autodiscover"
            b".json%3F@x.invalid&Protocol=XYZ&FooProtocol=Powershell HTTP/1.1\r\nHost: h\r\n"
            b"Connection: close\r\n\r\n",
            b"GET /aspnet_client/zzzzzzzz.aspx HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        ]
        shells = {p for t in truth.values() for p in t["checks"]["compromise"]["paths"]}
        corpus += [
            f"GET {p} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode()
            for p in sorted(shells | {data.paths[0].path, "/aspnet_client/shell.aspx"})
        ]
        ports = itertools.count(43000)
        assert len(picked) >= 10
        for key, ip in sorted(picked.items()):
            for request in corpus:
                a, b = _bound_pair(ports)
                got_nginx = _normal(_exchange(a, ip, ngx.port, request), ngx.port)
                got_python = _normal(_exchange(b, ip, py.port, request), py.port)
                assert got_python == got_nginx, (key, request[:60])
