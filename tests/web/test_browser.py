"""The web interface in a real browser: Debian's Chromium driven by Playwright.

A lab census (two scans of a lab on loopback, placed in Belgium by a country database
the test writes, a municipality from a constituency file) is served by a real server;
the test clicks from the overview to a country, a sector, an organisation and a host,
filters a table, downloads its CSV, and opens a diff.  A second store holds a host whose
headers, certificate and NTLM names are hostile: no script of theirs may run.
Screenshots are kept under pytest's temporary directory (the path is printed).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exwatch.lab import Lab
from tests.lab.running import free_port
from tests.report.test_census import _lab_geo
from tests.web.chromium import launched, watch
from tests.web.records import HOSTILE, HOSTILE_IP, build_store
from tests.web.server import serving

pytestmark = pytest.mark.slow

EXWATCH = [sys.executable, "-m", "exwatch"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launched()


@pytest.fixture(scope="module")
def census(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The store, and the address of an on-prem Exchange host with a build (so verdicts) in
    the municipality's network (the lab also holds web servers, 2003 servers without a build,
    Exchange Online and honeypots there)."""
    folder = tmp_path_factory.mktemp("census")
    env = _lab_geo(folder / "xdg")
    with Lab(hosts=60, port=free_port(), seed=5, workdir=folder / "lab") as lab:
        hosts = sorted(lab.ground_truth, key=ipaddress.ip_address)
        net = ipaddress.ip_network(f"{hosts[0]}/26", strict=False)
        exchange_ip = next(
            ip
            for ip in hosts
            if ipaddress.ip_address(ip) in net
            and lab.ground_truth[ip].get("build")
            and lab.ground_truth[ip]["kind"] == "exchange"
        )
        (folder / "constituency.csv").write_text(
            f"match,organisation,sector,country\n{net},Gemeente Lab,municipality,BE\n"
        )
        (folder / "targets.txt").write_text("\n".join(lab.cidr) + "\n")
        db = str(folder / "census.duckdb")
        for week in ("w1", "w2"):
            done = subprocess.run(
                [*EXWATCH, "scan", "-l", "targets.txt", "--allow-private", "--port",
                 str(lab.port), "--timeout", "2", "-q", "--db", db, "--scan-id", week],
                cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*EXWATCH, "enrich", "--db", db, "--constituency", "constituency.csv"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return db, exchange_ip


def _shot(page: Any, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")


def test_click_through_filter_download_and_diff(
    browser: Any, census: tuple[str, str], tmp_path: Path
) -> None:
    db, exchange_ip = census
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with serving(db) as site:
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, accept_downloads=True
        )
        page = context.new_page()
        problems = watch(page)
        page.goto(site.base + "/")
        assert page.get_attribute("html", "data-js") == "ok"  # our script ran (CSP allows it)
        assert page.locator("svg.worldmap").count() == 1
        _shot(page, shots, "overview")
        # Country: a click on Belgium on the map.
        page.locator('svg.worldmap g.cty[data-cc="BE"]').click()
        page.wait_for_url("**/countries/BE**")
        assert "Belgium" in page.inner_text("h1")
        page.click("text=by sector")
        page.wait_for_url("**by=sector**")
        page.click('#t-groups a.drill:has-text("municipality")')
        page.wait_for_url("**/countries/BE/sector/municipality**")
        page.click('#t-groups a.drill:has-text("Gemeente Lab")')
        page.wait_for_url("**/hosts?**")
        rows = page.locator("#t-hosts tbody tr")
        assert rows.count() > 0
        _shot(page, shots, "organisation-hosts")
        # Filter the table by an Exchange host's address, then download what is shown.
        first_ip = exchange_ip
        page.fill('form.filter input[name="q"]', first_ip)
        page.press('form.filter input[name="q"]', "Enter")
        page.wait_for_url("**q=**")
        shown = [a.inner_text() for a in page.locator("#t-hosts tbody tr a.host").all()]
        assert shown
        assert all(first_ip in ip for ip in shown)
        with page.expect_download() as info:
            page.click("a.dl-csv")
        saved = tmp_path / "hosts.csv"
        info.value.save_as(str(saved))
        downloaded = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
        assert [r["ip"] for r in downloaded] == shown
        # The host.
        page.click(f'#t-hosts a.host:text-is("{shown[0]}")')
        page.wait_for_url(f"**/hosts/{shown[0]}")
        assert page.locator("section.sighting").count() == 2  # both scans
        assert page.locator("table.verdicts").count() >= 1
        _shot(page, shots, "host")
        # A diff of the two scans.
        page.goto(site.base + "/diff")
        page.select_option('select[name="a"]', "w1")
        page.select_option('select[name="b"]', "w2")
        page.wait_for_load_state()
        page.click('#diff-form button[type="submit"]')
        page.wait_for_url("**a=w1**")
        assert page.locator("#t-diff").count() == 1
        assert "Hosts whose state changed" in page.content()
        _shot(page, shots, "diff")
        assert problems == []
        context.close()
    print(f"screenshots kept in {shots}")


def test_hostile_strings_run_no_script(
    browser: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = build_store(tmp_path, "duckdb", request)
    with serving(db) as site:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems = watch(page)
        for path in (f"/hosts/{HOSTILE_IP}", "/hosts?scan=scan-3&show=all",
                     "/countries/BE/sector/municipality?scan=scan-3",
                     "/search?q=%3Cimg&scan=scan-3", "/diff?a=scan-1&b=scan-3"):  # fmt: skip
            page.goto(site.base + path)
            assert page.evaluate("typeof window.__pwned") == "undefined", path
            # Nothing a server sent became an element or an attribute.
            assert page.locator("img").count() == 0, path
            assert page.locator("svg[onload], [onerror], [onload]").count() == 0, path
            assert page.locator('a[href^="javascript:"]').count() == 0, path
            scripts = page.eval_on_selector_all("script", "s => s.map(e => e.src)")
            assert scripts == [site.base + "/static/app.js"], path
            assert page.get_attribute("html", "data-js") == "ok"
        page.goto(site.base + f"/hosts/{HOSTILE_IP}")
        text = page.inner_text("body")
        assert HOSTILE["script"] in text  # shown as text, literally
        assert HOSTILE["url"] in text
        # Direction overrides and terminal escapes are shown, not obeyed.
        assert "\u202e" not in text
        assert "mail.\\u202eexe.evil\\u202c.example" in text
        assert "\\x1b[31mRED" in text
        _shot(page, tmp_path, "hostile-host")
        assert problems == []
