"""A real 40-host lab checked with plain Python clients against its own ground truth."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exwatch.lab import Lab, find_nginx

from .ntlm_decode import decode_type2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_nginx() is None, reason="nginx not installed (apt-get install -y nginx)"
    ),
]

BASE = "127.16.200.1"  # away from the default range, so a developer's own lab does not clash
TYPE1 = "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw=="  # as nmap's http-ntlm-info
MANIFEST = "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application"
PATH_RE = re.compile(r'href="/owa/(?:auth/)?(\d+\.\d+\.\d+(?:\.\d+)?)/themes/')
MANIFEST_RE = re.compile(
    r'<assemblyIdentity name="microsoft\.exchange\.ediscovery\.exporttool\.application" '
    r'version="(\d+\.\d+\.\d+\.\d+)"'
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("lab")
    with Lab(hosts=40, port=_free_port(), seed=5, workdir=workdir, base=BASE) as running:
        yield running


def _get(
    ip: str, port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, str]:
    conn = http.client.HTTPSConnection(ip, port, context=_ctx(), timeout=5)
    try:
        conn.request("GET", path, headers={"Host": f"{ip}:{port}", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.msg, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _observe(ip: str, port: int) -> dict[str, Any]:
    """A small 'perfect scanner': every passive technique the ground truth assumes."""
    seen: set[str] = set()
    techniques: set[str] = set()
    fe: set[str] = set()
    ntlm: dict[str, str] | None = None
    for path in (
        "/owa/",
        "/owa/auth/logon.aspx",
        "/owa/service",
        MANIFEST,
        "/EWS/Exchange.asmx",
        "/autodiscover/autodiscover.xml",
    ):
        extra = {"Authorization": f"NTLM {TYPE1}"} if path.startswith("/EWS") else {}
        status, headers, body = _get(ip, port, path, extra)
        if headers.get("X-OWA-Version"):
            seen.add(headers["X-OWA-Version"])
            techniques.add("x-owa-version")
        if headers.get("X-FEServer"):
            fe.add(headers["X-FEServer"])
            techniques.add("x-feserver")
        if path == "/owa/auth/logon.aspx" and status == 200:
            versions = PATH_RE.findall(body)
            if versions:
                seen.update(versions)
                techniques.add("owa-path")
            elif "<!-- OwaPage = ASP.auth_logon_aspx -->" in body:
                techniques.add("logon-page")
        if path == MANIFEST and status == 200:
            m = MANIFEST_RE.search(body)
            assert m is not None
            seen.add(m.group(1))
            techniques.add("exporttool")
        if path.startswith("/EWS") and status == 401:
            offers = headers.get_all("WWW-Authenticate") or []
            tokens = [o.split(" ", 1)[1] for o in offers if o.startswith("NTLM ")]
            assert len(tokens) == 1, offers
            ntlm = decode_type2(tokens[0])
            techniques.add("ntlm")
    return {"seen": seen, "techniques": techniques, "fe": fe, "ntlm": ntlm}


def _hosts(lab: Lab, kind: str) -> list[dict[str, Any]]:
    return [h for h in lab.ground_truth.values() if h["kind"] == kind]


def _key(build: str) -> tuple[int, ...]:
    return tuple(int(p) for p in build.split("."))


def test_exchange_hosts_show_exactly_what_the_ground_truth_says(lab: Lab) -> None:
    hosts = [h for h in _hosts(lab, "exchange") if h["profile"] != "load-balancer"]
    assert len(hosts) >= 10
    for gt in hosts:
        got = _observe(gt["ip"], lab.port)
        where = f"{gt['ip']} ({gt['profile']}, {gt['true_builds']})"
        assert sorted(got["seen"], key=_key) == gt["builds_seen"], where
        assert sorted(got["techniques"]) == gt["techniques"], where
        assert sorted(got["fe"]) == gt["x_feserver"], where
        assert got["ntlm"] == gt["ntlm"], where
        four = [b for b in got["seen"] if b.count(".") == 3]
        best = four[0] if four else (next(iter(got["seen"])) if got["seen"] else None)
        assert best == gt["build"], where


def test_load_balancer_shows_both_builds(lab: Lab) -> None:
    gt = next(h for h in _hosts(lab, "exchange") if h["profile"] == "load-balancer")
    versions, names = set(), set()
    for _ in range(30):  # the backend follows the client's source port
        _, headers, _ = _get(gt["ip"], lab.port, "/owa/")
        versions.add(headers["X-OWA-Version"])
        names.add(headers["X-FEServer"])
    assert versions == set(gt["true_builds"])
    assert names == set(gt["x_feserver"])
    assert gt["build"] == min(gt["true_builds"], key=_key)


def test_owa_redirect_and_logon_page_look_like_exchange(lab: Lab) -> None:
    for gt in _hosts(lab, "exchange"):
        if gt["profile"] == "ews-only":
            status, _, _ = _get(gt["ip"], lab.port, "/owa/")
            assert status == 404
            continue
        status, headers, _ = _get(gt["ip"], lab.port, "/owa/")
        host = f"{gt['ip']}:{lab.port}"
        assert status == 302
        assert headers["Location"] == (
            f"https://{host}/owa/auth/logon.aspx?url=https%3a%2f%2f{host}%2fowa%2f&reason=0"
        )
        status, headers, body = _get(gt["ip"], lab.port, "/owa/auth/logon.aspx")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert "<!-- OwaPage = ASP.auth_logon_aspx -->" in body
        if gt["profile"] != "custom-logon":
            title = "Outlook Web App" if gt["true_builds"][0].startswith("14.") else "Outlook"
            assert f"<title>{title}</title>" in body
        assert "nginx" not in body.lower()


def test_service_answers_440_and_blocked_ecp_403_or_404(lab: Lab) -> None:
    for gt in _hosts(lab, "exchange"):
        status, _, _ = _get(gt["ip"], lab.port, "/owa/service")
        assert status == (404 if gt["profile"] == "ews-only" else 440)
        status, _, _ = _get(gt["ip"], lab.port, MANIFEST)
        assert status == (200 if "exporttool" in gt["techniques"] else status)
        if "exporttool" not in gt["techniques"]:
            assert status in {403, 404}


def test_ews_without_type1_offers_negotiate_and_ntlm(lab: Lab) -> None:
    gt = next(h for h in _hosts(lab, "exchange") if "ntlm" in h["techniques"])
    status, headers, _ = _get(gt["ip"], lab.port, "/EWS/Exchange.asmx")
    assert status == 401
    assert headers.get_all("WWW-Authenticate") == ["Negotiate", "NTLM"]


def test_web_servers_are_not_exchange(lab: Lab) -> None:
    servers = set()
    for gt in _hosts(lab, "web"):
        status, headers, body = _get(gt["ip"], lab.port, "/")
        assert status == 200
        assert "X-OWA-Version" not in headers
        assert "OwaPage" not in body
        servers.add(headers["Server"])
        assert _get(gt["ip"], lab.port, "/owa/auth/logon.aspx")[0] == 404
    assert "Microsoft-IIS/10.0" in servers


def test_closed_ports_refuse(lab: Lab) -> None:
    for gt in _hosts(lab, "closed"):
        assert gt["expected_status"] == "connection-refused"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((gt["ip"], lab.port), timeout=2).close()


def _tls(ip: str, port: int, timeout: float) -> ssl.SSLSocket:
    raw = socket.create_connection((ip, port), timeout=timeout)
    return _ctx().wrap_socket(raw)


def _one(lab: Lab, kind: str) -> str:
    return str(next(h["ip"] for h in lab.ground_truth.values() if h["kind"] == kind))


def test_silent_host_accepts_and_never_answers(lab: Lab) -> None:
    with pytest.raises(TimeoutError):
        _tls(_one(lab, "silent"), lab.port, timeout=1.0)


def test_broken_tls_host(lab: Lab) -> None:
    with pytest.raises(ssl.SSLError):
        _tls(_one(lab, "hostile-broken-tls"), lab.port, timeout=3)


def test_reset_host(lab: Lab) -> None:
    with pytest.raises(ConnectionResetError):
        _tls(_one(lab, "hostile-reset"), lab.port, timeout=3)


def _request(sock: ssl.SSLSocket, ip: str) -> None:
    sock.sendall(f"GET /owa/ HTTP/1.1\r\nHost: {ip}\r\n\r\n".encode())


def test_early_close_host(lab: Lab) -> None:
    ip = _one(lab, "hostile-early-close")
    with _tls(ip, lab.port, timeout=3) as s:
        _request(s, ip)
        try:
            data = s.recv(4096)
        except ssl.SSLEOFError:
            data = b""
        assert data == b""


def test_garbage_host(lab: Lab) -> None:
    ip = _one(lab, "hostile-garbage")
    with _tls(ip, lab.port, timeout=3) as s:
        _request(s, ip)
        data = s.recv(4096)
        assert data
        assert not data.startswith(b"HTTP/")


def test_endless_headers_host(lab: Lab) -> None:
    ip = _one(lab, "hostile-endless-headers")
    with _tls(ip, lab.port, timeout=3) as s:
        _request(s, ip)
        got = b""
        while len(got) < 1_000_000:
            got += s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\n\r\n" not in got


def test_slow_drip_host(lab: Lab) -> None:
    ip = _one(lab, "hostile-slow-drip")
    with _tls(ip, lab.port, timeout=3) as s:
        _request(s, ip)
        s.settimeout(0.5)
        got = b""
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            try:
                got += s.recv(100)
            except TimeoutError:
                continue
        assert b"HTTP/1.1 200 OK".startswith(got)
        assert 1 <= len(got) <= 5


def test_ground_truth_file_matches_api(lab: Lab) -> None:
    import json

    assert lab.ground_truth_path is not None
    doc = json.loads(lab.ground_truth_path.read_text())
    assert doc["hosts"] == lab.ground_truth
    assert doc["cidrs"] == lab.cidr
    assert [ip for ip, _ in lab.targets] == list(lab.ground_truth)


def test_cli_runs_until_sigterm_and_cleans_up(tmp_path: Path) -> None:
    port = _free_port()
    exe = Path(sys.executable).with_name("exwatch")
    argv = [
        str(exe),
        "lab",
        "--hosts",
        "12",
        "--port",
        str(port),
        "--base",
        "127.16.201.1",
        "--dir",
        str(tmp_path),
        "--seed",
        "2",
    ]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if "running" in line:
                    break
            out = "".join(lines)
            assert "127.16.201.1" in out, out
            assert (tmp_path / "ground-truth.json").exists()
            nginx_pid = int((tmp_path / "nginx.pid").read_text())
            os.kill(nginx_pid, 0)  # alive
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            assert "lab: stopped" in proc.stdout.read()
            with pytest.raises(ProcessLookupError):
                os.kill(nginx_pid, 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
