"""The offline HTML report: self-contained, escaped, and rendered by a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from exwatch.cli import main
from tests.report.records import HOSTILE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _render(db: Path, out: Path) -> str:
    assert main(["report", "--db", str(db), "--format", "html", "-o", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_html_is_self_contained_and_escaped(hostile_store, tmp_path):
    db, _ = hostile_store
    page = _render(db, tmp_path / "r.html")
    # Every server-given string (hostname, certificate subject, NTLM domain, X-FEServer) is escaped.
    assert HOSTILE not in page
    assert "alert(1)" not in page.replace("&lt;script&gt;alert(1)&lt;/script&gt;", "")
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4
    # One script element only: ours, pinned by the CSP hash.
    assert len(re.findall(r"<script\b", page)) == 1
    assert "script-src 'sha256-" in page
    # Nothing is loaded from anywhere.
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)
    assert "@import" not in page
    # Map, charts, tables, sources.
    assert 'class="worldmap"' in page
    assert page.count('data-cc="') > 200
    assert re.search(r'data-cc="NL" fill="#[0-9a-f]{6}"><title>Netherlands', page)
    assert page.count('class="chart"') == 5  # sectors, CVEs, builds, months behind, trend
    assert "iptocc" in page
    assert "RIR registration" in page
    assert 'id="t-country"' in page
    assert 'class="sortable"' in page
    # The KEV-only view lists the hostile server (vulnerable to ProxyLogon), escaped too.
    kev = page[page.index('id="t-kev-hosts"') :]
    kev = kev[: kev.index("</table>")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in kev
    assert "CVE-2021-26855" in kev


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`)")
def test_html_renders_in_headless_chromium(hostile_store, tmp_path):
    db, _ = hostile_store
    html = tmp_path / "report.html"
    _render(db, html)
    profile = tmp_path / "profile"
    base = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}",
    ]  # fmt: skip
    dom = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", "--dump-dom", html.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The inline script ran to its end (CSP allowed it, no exception on the way).
    assert "exwatch-js-ok" in dom.stdout
    assert "Uncaught" not in dom.stderr
    assert "Content Security Policy" not in dom.stderr
    # The hostile strings stayed text: no element was created from them.
    assert HOSTILE not in dom.stdout
    png = tmp_path / "report.png"
    shot = subprocess.run(
        [*base, f"--screenshot={png}", "--window-size=1400,2000", html.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a blank 1400x2000 page compresses to a few KB
