# ruff: noqa: E501  (log lines are kept whole on purpose)
"""Hostile and awkward copies (issue 11 #2-#5, issue 14): nothing skipped silently, nothing
unbounded, nothing raw on a terminal, health probes left out, balancers seen through."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import pytest
from hostcheck_logfmt import HP_HEADER, IIS_HEADER, hp, iis  # type: ignore[import-not-found]

from exwatch.cli import main
from exwatch.hostcheck.checker import run_hostcheck
from exwatch.hostcheck.report_html import render_html
from exwatch.hostcheck.result import MAX_FINDINGS_PER_RULE

HP_DIR = "C/Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy"
IIS_DIR = "C/inetpub/logs/LogFiles/W3SVC1"
SRC = Path(__file__).resolve().parents[2] / "src" / "exwatch" / "hostcheck"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_managed_availability_probes_are_never_findings(tmp_path: Path) -> None:
    probe = hp(
        DateTime="2023-01-09T19:00:00.130Z",
        Protocol="Ecp",
        UrlHost="localhost",
        UrlStem="/ecp/",
        AnchorMailbox="ServerInfo~localhost/ecp/ReportingWebService/",
        UserAgent="AMProbe/Local/ClientAccess",
        ClientIpAddress="127.0.0.1",
        AuthenticatedUser="CONTOSO\\HealthMailbox1",
        IsAuthenticated="true",
        Method="GET",
    )
    own = hp(
        DateTime="2023-01-09T19:00:01.130Z",
        Protocol="Autodiscover",
        UrlStem="/autodiscover/autodiscover.xml",
        AnchorMailbox="ServerInfo~localhost/autodiscover/autodiscover.xml",
        UserAgent="AMProbe/Local/ClientAccess",
        ClientIpAddress="10.0.0.5",
        Method="POST",
    )
    attacker = hp(DateTime="2023-01-09T19:30:00.000Z", Protocol="Ecp", UrlStem="/ecp/y.js",
                  AnchorMailbox="ServerInfo~localhost:444/ecp/about.aspx?#", UserAgent="AMProbe/Local/ClientAccess",
                  ClientIpAddress="198.51.100.21", Method="POST")  # fmt: skip
    _write(tmp_path / HP_DIR / "Ecp" / "HttpProxy_2023010919-1.LOG",
           HP_HEADER.format(date="2023-01-09T19:00:00.000Z") + (probe + "\n" + own + "\n") * 500 + attacker + "\n")  # fmt: skip
    result = run_hostcheck(tmp_path)
    assert [f.source_ip for f in result.findings] == ["198.51.100.21"] * len(result.findings)
    assert {f.rule for f in result.findings} == {
        "proxylogon-ssrf-autodiscover-probe",
        "hafnium-post-to-static-resource",
        "proxylogon-static-resource-ssrf",
    }
    assert result.health_probes == 1000
    assert result.to_json()["coverage"]["health_probes_ignored"] == 1000


def test_client_behind_a_balancer_is_recorded_with_the_balancer(tmp_path: Path) -> None:
    header = IIS_HEADER.format(date="2021-03-05 00:00:00").replace(
        "time-taken", "time-taken X-Forwarded-For"
    )
    line = (
        iis(method="POST", stem="/aspnet_client/system_web/x.aspx", cip="10.0.0.2")
        + " 139.162.202.236,+10.0.0.2"
    )
    _write(tmp_path / IIS_DIR / "u_ex210305.log", header + line + "\n")
    result = run_hostcheck(tmp_path)
    finding = next(f for f in result.findings if f.rule == "webshell-page-request")
    assert finding.source_ip == "139.162.202.236"
    assert finding.details["peer_ip"] == "10.0.0.2"
    assert finding.details["forwarded_for"] == "139.162.202.236,+10.0.0.2"
    timeline = result.to_json()["timeline"]
    assert list(timeline["source_addresses"]) == ["139.162.202.236"]


def test_reduced_and_unknown_layouts_are_warned_by_name(tmp_path: Path) -> None:
    _write(tmp_path / HP_DIR / "Owa" / "HttpProxy_2021030500-1.LOG",
           "when,host,path,agent,code,verb\n2021-03-05T03:06:27.696Z,srv,/owa/auth/shell.aspx,x,200,GET\n")  # fmt: skip
    result = run_hostcheck(tmp_path)
    (stats,) = result.files
    assert stats.layout is not None
    assert stats.layout.startswith("unknown Exchange HttpProxy log column layout (when, host, path")
    assert "missing DateTime, Protocol, UrlStem" in stats.layout
    # Request fields are still taken by their shape: the shell page is seen.
    assert [f.rule for f in result.findings] == ["webshell-page-request"]


def test_json_escapes_c1_controls_and_html_has_no_raw_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11 #5: U+009B (a one-byte CSI) and ESC/BEL reached --json and the HTML raw."""
    ua = "evil\u009b2J\x1b[31m\x07agent"
    _write(tmp_path / IIS_DIR / "u_ex210305.log",
           IIS_HEADER.format(date="d") + iis(method="POST", stem="/aspnet_client/x.aspx", ua=ua) + "\n")  # fmt: skip
    html = tmp_path / "r.html"
    assert main(["hostcheck", str(tmp_path), "--json", "-o", str(html)]) == 1
    out = capsys.readouterr().out
    assert "\u009b" not in out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\\u009b" in out
    report = json.loads(out)
    assert "evil\u009b2J" in report["findings"][0]["evidence"]  # the data itself is kept
    raw = html.read_bytes()
    for byte in (b"\x1b", b"\x07", "\u009b".encode()):
        assert byte not in raw
    assert b"\\x1b" in raw
    assert b"\\x9b" in raw
    assert "\x1b" not in render_html(run_hostcheck(tmp_path))


def test_file_findings_are_capped_and_counted(tmp_path: Path) -> None:
    """Issue 11 #4: one finding per tiny page on main (100,000 pages, 68 MB of JSON)."""
    folder = tmp_path / "C/inetpub/wwwroot/aspnet_client"
    folder.mkdir(parents=True)
    extra = 150
    for i in range(MAX_FINDINGS_PER_RULE + extra):
        (folder / f"p{i}.aspx").write_bytes(b"<%@ Page %>")
    result = run_hostcheck(tmp_path)
    counts = Counter(f.rule for f in result.findings)
    assert counts["file-page-in-aspnet-client"] == MAX_FINDINGS_PER_RULE
    assert result.suppressed["file-page-in-aspnet-client"] == extra
    assert result.status == "findings"


def test_exit_codes_are_documented_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hostcheck", "--help"]) == 0
    text = capsys.readouterr().out
    for line in ("0  clean", "1  findings", "3  empty", "unreadable", "4  partial"):
        assert line in text


def _imports(path: Path) -> set[str]:
    """exwatch.hostcheck modules a file imports, at any depth (function-level too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("exwatch.hostcheck")
        ):
            out.add(node.module)
            for alias in node.names:  # `from exwatch.hostcheck import rps_cat`
                out.add(f"{node.module}.{alias.name}")
    return out


def test_no_import_cycles_in_hostcheck() -> None:
    """findings<->timeline and prefilter<->rules were cycles on main."""
    modules = {
        "exwatch.hostcheck."
        + ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
        for p in SRC.rglob("*.py")
    }
    graph = {
        name: {m for m in _imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
        return seen

    cycles = sorted(name for name in graph if name in reach(name))
    assert cycles == []
