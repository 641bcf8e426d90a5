"""The real public incident samples (`../shared/realsamples/`, read in place, never copied):
each gives every finding its README lists, and no Managed Availability probe is a finding."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from exwatch.cli import main
from exwatch.hostcheck.checker import run_hostcheck

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "realsamples"

needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"real samples not present at {SAMPLES} (../shared/realsamples)"
)


def _rules(name: str) -> Counter[str]:
    result = run_hostcheck(SAMPLES / name)
    assert result.health_probes == 0
    return Counter(f.rule for f in result.findings)


@needs_samples
def test_helsecert_proxylogon_gives_every_listed_finding() -> None:
    got = _rules("helsecert-proxylogon")
    # The SSRF chain from 130.255.189.21 (Test-ProxyLogon CSV, 11 rows).
    assert got["tpl-cve-2021-26855-ssrf"] == 9
    assert got["proxylogon-ssrf-autodiscover-probe"] == 2
    assert got["proxylogon-static-resource-ssrf"] == 11
    # The ResetOABVirtualDirectory row (status 200) although a CSV has no protocol folder.
    assert got["tpl-cve-2021-27065-reset-vdir"] == 1
    # Set-OabVirtualDirectory ExternalUrl='http://f/<script ...' twice in ECP.
    assert got["ecp-set-vdir-script"] == 2
    # RedirSuiteServerProxy.aspx answered 200: 5 IIS rows and 5 rows of the reduced OWA
    # HttpProxy export; the probes for other shells after them.
    assert got["webshell-page-request"] == 10
    assert got["webshell-page-probe"] >= 3 + 60


@needs_samples
def test_helsecert_web_shell_sources_and_reduced_layout_warning() -> None:
    result = run_hostcheck(SAMPLES / "helsecert-proxylogon")
    shell = {f.source_ip for f in result.findings if f.rule == "webshell-page-request"}
    # The second block of the OWA export has no address column: those rows have none.
    assert shell == {"139.162.202.236", "67.205.176.9", None}
    owa = next(s for s in result.files if s.file.endswith("HttpProxy_2021030500-1.LOG"))
    assert owa.layout is not None
    assert "urlpath" in owa.layout
    assert "AnchorMailbox" in owa.layout  # named: what the rules cannot see in this file
    assert any("reduced" in w for w in owa.warnings)


@needs_samples
def test_mitre_transport_agent_is_not_clean() -> None:
    got = _rules("mitre-transport-agent")
    # Install-TransportAgent x2 and Enable-TransportAgent x2 (EventID 6, remote PowerShell).
    assert got["transport-agent-installed"] == 4
    # Sysmon 11: notepad++ writing TransportRoles\Shared\agents.config.
    assert got["transport-agent-file-written"] == 1


@needs_samples
def test_otrf_sentinel_export_in_a_zip() -> None:
    result = run_hostcheck(SAMPLES / "otrf-proxylogon-poc")
    got = Counter(f.rule for f in result.findings)
    assert got["vdir-cmdlet-with-script"] == 1  # Set-OabVirtualDirectory with <script ...
    assert got["oab-vdir-reset"] == 2  # then Remove-/New-OabVirtualDirectory
    assert got["ecp-error-with-ssrf-url"] == 1  # /ecp/about.aspx?a=]:444/ecp/tpy.js
    assert got["script-file-created-in-web-folder"] == 1  # ...\owa\auth\ohyeah.aspx by System
    assert got["webserver-spawns-shell"] >= 2  # w3wp (MSExchangeOWAAppPool): cmd /c whoami
    shell = next(f for f in result.findings if f.rule == "webserver-spawns-shell")
    assert "whoami" in shell.evidence
    assert shell.details["event"]["channel"] in ("Microsoft-Windows-Sysmon/Operational", "Security")
    sources = result.to_json()["coverage"]["sources"]
    assert sources["evtx:sysmon"]["records"] == 4679
    assert sources["evtx:security"]["records"] == 5227
    assert sources["evtx:msexchange-management"]["records"] == 3
    assert result.status == "findings"


@needs_samples
def test_truncated_evtx_keeps_its_whole_records(tmp_path: Path) -> None:
    """The README's cut copy (file header plus half of the only chunk) read 0 records and
    reported clean on main; the four records in that half are whole and are read now."""
    src = (
        SAMPLES / "mitre-transport-agent/C/Windows/System32/winevt/Logs/MSExchange Management.evtx"
    )
    dst = tmp_path / "C/Windows/System32/winevt/Logs/MSExchange Management.evtx"
    dst.parent.mkdir(parents=True)
    dst.write_bytes(src.read_bytes()[:34816])
    result = run_hostcheck(tmp_path)
    assert Counter(f.rule for f in result.findings) == {"transport-agent-installed": 4}
    # Cut inside the first record: nothing usable, and that is its own status.
    dst.write_bytes(src.read_bytes()[:5000])
    result = run_hostcheck(tmp_path)
    assert result.status == "unreadable"
    assert result.exit_code == 3


@needs_samples
def test_cli_on_each_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("helsecert-proxylogon", "mitre-transport-agent", "otrf-proxylogon-poc"):
        assert main(["hostcheck", str(SAMPLES / name), "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["status"] == "findings"
        assert report["coverage"]["health_probes_ignored"] == 0
    # The samples are read-only: nothing may be written next to them.
    copy = tmp_path / "copy"
    shutil.copytree(SAMPLES / "mitre-transport-agent", copy)
    before = sorted(p.name for p in copy.rglob("*"))
    main(["hostcheck", str(copy)])
    assert sorted(p.name for p in copy.rglob("*")) == before
