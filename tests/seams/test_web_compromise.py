"""The web interface shows what the opt-in checks found, on a store filled by a real
`scan --check all-safe` of the lab, in Debian's Chromium (Playwright), on both backends:
the overview counts the compromised hosts, its link filters the host table to exactly
them, and a host's page shows each finding's evidence as text (a hostile one runs nothing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.seams.lab import Checked, run
from tests.web.chromium import launched, watch
from tests.web.server import serving

pytestmark = pytest.mark.slow
HOSTILE_EVIDENCE = "<img src=x onerror=\"window.__pwned='evidence'\">\x1b[31m\u202eRED"
HOSTILE_PATH = "/owa/auth/<svg onload=window.__pwned='path'>.aspx"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launched()


def _hostile_scan(checked: Checked, folder: Path) -> tuple[str, Path]:
    """A later scan of one compromised host whose shell page is hostile: the real record,
    with what the server showed replaced by markup, escapes and a direction override."""
    record = next(r for r in checked.records if r["ip"] in checked.compromised())
    record = json.loads(json.dumps(record))
    record["scan_id"] = "hostile"
    record["timestamp"] = record["timestamp"].replace("2026-", "2027-", 1)
    for finding in record["checks"]["compromise"]["findings"]:
        finding["evidence"], finding["path"] = HOSTILE_EVIDENCE, HOSTILE_PATH
    record["checks"]["compromise"]["reason"] = HOSTILE_EVIDENCE
    path = folder / "hostile.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return str(record["ip"]), path


def test_overview_filter_and_host_page_show_the_checks(
    checked: Checked, backend: str, browser: Any, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    compromised = checked.compromised()
    ran = sum(1 for r in checked.records if (r.get("checks") or {}).get("ran"))
    db = checked.store(backend, tmp_path, request)
    done = run("enrich", "--db", db, "--constituency", str(checked.constituency))
    assert done.returncode == 0, done.stderr
    with serving(db) as site:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems = watch(page)
        page.goto(f"{site.base}/?scan={checked.scan_id}")
        card = page.locator("#compromised")
        assert card.locator(".n").inner_text() == str(len(compromised))
        assert f"compromised of {ran} checked" in card.inner_text()
        card.locator("a").click()
        page.wait_for_url("**compromise=compromised**")
        shown = {a.inner_text() for a in page.locator("#t-hosts tbody tr a.host").all()}
        assert shown == compromised
        assert page.locator('select[name="compromise"]').input_value() == "compromised"
        # The drill-down counts agree with the overview.
        page.goto(f"{site.base}/countries?scan={checked.scan_id}")
        head = page.locator("#t-groups thead th").all_inner_texts()
        column = head.index("Compromised")
        counts = [
            int(row.locator("td").nth(column).inner_text().replace(",", ""))
            for row in page.locator("#t-groups tbody tr").all()
        ]
        assert sum(counts) == len(compromised)
        # A host's page: the judgement and each finding's path and evidence.
        ip = sorted(compromised)[0]
        page.goto(f"{site.base}/hosts/{ip}")
        checks = page.locator("table.checks").inner_text()
        assert "compromised" in checks
        record = next(r for r in checked.records if r["ip"] == ip)
        findings = page.locator("table.findings").inner_text()
        for finding in record["checks"]["compromise"]["findings"]:
            assert finding["path"] in findings
            assert finding["evidence"] in findings
        assert problems == []
    # A hostile shell page, loaded like any other scan: shown as text, runs nothing.
    hostile_ip, lines = _hostile_scan(checked, tmp_path)
    for args in (("ingest", "--db", db, str(lines)), ("enrich", "--db", db)):
        done = run(*args)
        assert done.returncode == 0, done.stderr
    with serving(db) as site:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems = watch(page)
        page.goto(f"{site.base}/hosts/{hostile_ip}")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("img, [onerror], [onload]").count() == 0
        assert page.get_attribute("html", "data-js") == "ok"
        text = page.locator("section.sighting").first.locator("table.findings").inner_text()
        assert "<img src=x onerror=" in text
        assert "\u202e" not in text
        assert "\x1b" not in text
        assert "<svg onload=window.__pwned='path'>" in text
        assert problems == []
