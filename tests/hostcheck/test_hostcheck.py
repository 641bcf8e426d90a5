# ruff: noqa: E501  (log lines and fixture rows are kept whole on purpose)
"""End to end over the committed fixture copies, through the library and the CLI."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from exwatch.cli import main
from exwatch.hostcheck import rps_cat
from exwatch.hostcheck.checker import guess_exchange_path, run_hostcheck
from exwatch.hostcheck.discovery import discover
from exwatch.hostcheck.records import Kind
from exwatch.hostcheck.report_html import render_html

FIX = Path(__file__).parent / "fixtures"
KAPE = FIX / "kape"

EXPECTED_KAPE = {
    "tpl-cve-2021-26855-ssrf": 5,  # HelseCERT sequence minus autodiscover and localhost rows, plus the Owa row
    "tpl-cve-2021-27065-reset-vdir": 1,  # the Owa-folder copy of the row does not count
    "tpl-cve-2021-27065-ecp-set-vdir": 1,  # two lines, first per file
    "tpl-cve-2021-26858-oab-write": 1,
    "proxylogon-ssrf-autodiscover-probe": 2,
    "proxylogon-static-resource-ssrf": 7,
    "hafnium-post-to-static-resource": 7,
    "hafnium-attacker-user-agent": 7,
    "hafnium-known-source-address": 1,
    "ecp-set-vdir-script": 2,
    "oab-download-script-extension": 1,
    "webshell-page-request": 1,
    "webshell-page-probe": 1,
    "proxyshell-autodiscover-ssrf": 3,
    "proxyshell-rps-cat-token": 2,
    "mailbox-import-export-role-assigned": 1,
    "mailbox-export-to-web-folder": 1,
    "mailbox-export-request-removed": 1,
    "file-page-in-aspnet-client": 1,
    "file-unknown-page-in-owa-auth": 1,
    "file-known-webshell-name": 2,
    "file-lsass-dump": 1,
    "file-archive-in-programdata": 1,
    "webshell-chopper-eval-request": 1,
    "webshell-jscript-base64-eval": 1,
    "oab-vdir-reset": 1,  # the Remove-OABVirtualDirectory line of the ECP Server log
    "memory-dump-file": 0,  # the dump is not in a web folder, so its content is not scanned
}


def test_discovery_of_kape_layout() -> None:
    inv = discover(KAPE)
    kinds = Counter(f.kind for f in inv.logs)
    assert kinds == {
        Kind.HTTPPROXY: 4,
        Kind.IIS: 1,
        Kind.ECP_SERVER: 1,
        Kind.OAB_GENERATOR: 1,
        Kind.CMDLET: 1,
    }
    assert {f.folder for f in inv.logs if f.kind is Kind.HTTPPROXY} == {
        "ecp",
        "owa",
        "autodiscover",
        "powershell",
    }
    assert inv.web_folders == {
        "aspnet_client": True,
        "owa/auth": True,
        "ecp/auth": True,
        "inetpub/wwwroot": True,
    }
    assert guess_exchange_path(inv) == "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\"


def test_discovery_of_flattened_and_case_changed_copies(tmp_path: Path) -> None:
    flat = tmp_path / "CASE"
    for src in KAPE.rglob("*"):
        if src.is_file() and src.suffix.lower() == ".log":
            shutil.copy(
                src, flat / src.name.upper() if flat.exists() else _mk(flat) / src.name.upper()
            )
    inv = discover(flat)
    # Names collide when flattened (two HttpProxy_2021081310-1.LOG): the header decides the kind.
    assert {f.kind for f in inv.logs} == {
        Kind.HTTPPROXY,
        Kind.IIS,
        Kind.ECP_SERVER,
        Kind.OAB_GENERATOR,
        Kind.CMDLET,
    }


def _mk(p: Path) -> Path:
    p.mkdir(parents=True)
    return p


def test_full_run_hits_every_expected_rule_exactly() -> None:
    result = run_hostcheck(KAPE)
    got = Counter(f.rule for f in result.findings)
    assert {k: v for k, v in got.items()} == {k: v for k, v in EXPECTED_KAPE.items() if v}
    assert result.status == "findings"
    report = result.to_json()
    assert report["coverage"]["missing"] == [
        "evtx:application",
        "evtx:msexchange-management",
        "evtx:sysmon",
        "evtx:security",
        "evtx:powershell",
        "evtx:system",
        "evtx:defender",
    ]
    assert not report["coverage"]["stages"]["execution"]["covered"]
    hp = report["coverage"]["kinds"]["exchange:httpproxy:line"]
    assert hp["files"] == 4
    assert hp["first_timestamp"] == "2021-03-03T02:58:01.001Z"
    tl = report["timeline"]
    assert tl["first_ssrf"]["timestamp"] == "2021-03-03T03:01:11.200Z"
    assert tl["first_ssrf"]["source_ip"] == "130.255.189.21"
    assert tl["first_file_write"]["rule"] == "ecp-set-vdir-script"
    assert tl["first_webshell_use"]["source_ip"] == "139.162.202.236"


def test_rps_cat_evidence_shows_user_and_sids() -> None:
    result = run_hostcheck(KAPE)
    cat = [f for f in result.findings if f.rule == "proxyshell-rps-cat-token"]
    token = cat[0].details["rps_cat"]
    assert token["logon_name"] == "administrator@contoso.local"
    assert token["user_sid"] == "S-1-5-21-1004336348-1177238915-682003330-500"
    assert token["group_sids"] == ["S-1-5-32-544", "S-1-5-21-1004336348-1177238915-682003330-512"]
    assert token["auth_type"] == "Kerberos"
    assert token["complete"]


def test_rps_cat_decoder_is_strict_on_hostile_tokens() -> None:
    good = rps_cat.encode("u@x", "S-1-5-21-1", ["S-1-5-32-544"])
    assert rps_cat.decode(good[:-12]).error  # truncated
    assert rps_cat.decode("!!!notbase64!!!").complete is False
    assert rps_cat.extract_token("?a=1&X-Rps-CAT=" + good.replace("=", "%3D") + "&b=2") == good


def test_parity_mode_reports_only_test_proxylogon_conditions() -> None:
    result = run_hostcheck(KAPE, parity_only=True)
    got = Counter(f.rule for f in result.findings)
    assert got == {
        "tpl-cve-2021-26855-ssrf": 5,
        "tpl-cve-2021-27065-reset-vdir": 1,
        "tpl-cve-2021-27065-ecp-set-vdir": 1,
        "tpl-cve-2021-26858-oab-write": 1,
        "file-lsass-dump": 1,
        "file-archive-in-programdata": 1,
    }
    assert all(f.parity for f in result.findings)


def test_since_filters_records() -> None:
    result = run_hostcheck(KAPE, since="2021-08-01")
    logs = {f.rule for f in result.findings if f.kind != "file"}
    assert logs == {
        "proxyshell-autodiscover-ssrf", "proxyshell-rps-cat-token", "mailbox-import-export-role-assigned",
        "mailbox-export-to-web-folder", "mailbox-export-request-removed",
    }  # fmt: skip


def test_cli_json_exit_codes_and_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hostcheck", str(KAPE), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    f = report["findings"][0]
    assert set(f) >= {"cve", "rule", "severity", "file", "line", "timestamp", "evidence"}
    assert not f["file"].startswith("/")  # relative to DIR
    assert "coverage" in report
    assert report["status"] == "findings"


def test_copy_without_event_logs_is_partial_not_clean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Only web logs: execution and persistence cannot be seen, so it is not "clean".
    assert main(["hostcheck", str(FIX / "clean_flat"), "--json"]) == 4
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "partial"
    assert report["exit_code"] == 4
    stages = report["coverage"]["stages"]
    assert stages["initial-access"]["read"] == ["httpproxy", "iis", "ecp-server"]
    assert not stages["execution"]["covered"]
    assert report["findings"] == []
    assert report["coverage"]["httpproxy_folders"] == {"ecp": 1}
    assert set(report["coverage"]["kinds"]) == {
        "exchange:httpproxy:line",
        "iis:w3c:line",
        "exchange:ecp:server:line",
    }


def test_empty_copy_is_not_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 10 #9: an empty copy exited 0 on main, like a clean one."""
    (tmp_path / "notes.txt").write_text("nothing here\n")
    assert main(["hostcheck", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    assert "EMPTY COPY" in out
    assert "Not a clean result" in out


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert main(["hostcheck", str(tmp_path / "missing")]) == 2
    assert main(["hostcheck", str(tmp_path), "--since", "yesterday"]) == 2


def test_text_summary_neutralises_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hostcheck_logfmt import IIS_HEADER, iis  # type: ignore[import-not-found]

    d = tmp_path / "W3SVC1"
    d.mkdir()
    (d / "u_ex210305.log").write_text(
        IIS_HEADER.format(date="d")
        + iis(method="POST", stem="/aspnet_client/x.aspx", ua="\x1b[2J<b>evil</b>")
        + "\n"
    )
    assert main(["hostcheck", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\\x1b[2J" in out


def test_html_report_escapes_logged_strings(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["hostcheck", str(KAPE), "-o", str(out)]) == 1
    html = out.read_text()
    assert "<script language" not in html
    assert "&lt;script language=" in html
    assert "Status: findings" in html
    assert "<script" not in html
    assert "<b>" not in render_html(run_hostcheck(KAPE))
    assert "X-Rps-CAT: user administrator@contoso.local" in html


def test_each_finding_names_its_own_line_source_address() -> None:
    # Computed fields were once cached in the `extra` dict that records of one file share,
    # so every finding after the first named the first line's address.
    result = run_hostcheck(KAPE)
    iis_findings = [f for f in result.findings if f.kind == "iis:w3c:line"]
    assert len({f.source_ip for f in iis_findings}) > 2
    for f in iis_findings:
        assert f.source_ip == f.evidence.split(" ")[8], f.evidence


def test_parity_run_without_a_hit_does_not_count_unchecked_web_folders() -> None:
    # Test-ProxyLogon (and --parity) look at files only after a CVE hit: folders that were
    # not looked at are not coverage.
    result = run_hostcheck(KAPE, parity_only=True, since="2030-01-01")
    assert result.findings == []
    assert result.source_state("web-folders") == "missing"
    assert run_hostcheck(KAPE).source_state("web-folders") == "read"
