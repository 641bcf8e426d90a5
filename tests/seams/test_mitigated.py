"""The `mitigated` verdict (a mitigation the opt-in checks saw on a vulnerable build) is
shown and counted apart from vulnerable, patched and not affected: by-CVE reports (table,
JSON, CSV, HTML), the web's CVE pages and API, notify's messages and CSV, and exports;
on the checked lab scan, both backends."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.notify.runs import csv_of, messages, notify, text_of
from tests.seams.lab import Checked, run
from tests.web.server import serving

pytestmark = pytest.mark.slow


def _verdicts(checked: Checked, verdict: str) -> Counter[str]:
    return Counter(
        cve
        for r in checked.records
        if r["exchange"] and not r.get("exchange_online") and not r.get("suspect")
        for cve, v in r["cves"].items()
        if v == verdict
    )


def test_mitigated_is_its_own_count_everywhere(
    checked: Checked, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    mitigated, not_affected = _verdicts(checked, "mitigated"), _verdicts(checked, "not-affected")
    assert sum(mitigated.values()) >= 5  # the lab's EOMT and URL Rewrite mitigations
    db = checked.store(backend, tmp_path, request)
    done = run("enrich", "--db", db, "--constituency", str(checked.constituency))
    assert done.returncode == 0, done.stderr
    base = ["report", "--db", db, "--scan", checked.scan_id, "--by", "cve"]

    rows = json.loads(run(*base, "--format", "json").stdout)
    by_cve = {r["key"]: r for r in rows}
    for cve, count in mitigated.items():
        assert by_cve[cve]["mitigated"] == count, cve
    for cve, row in by_cve.items():
        assert row["not_affected"] == not_affected[cve], cve
        assert row["mitigated"] == mitigated[cve], cve
    table = list(csv.DictReader(io.StringIO(run(*base, "--format", "csv").stdout)))
    assert {r["key"]: int(r["mitigated"]) for r in table} == {k: mitigated[k] for k in by_cve}
    shown = run(*base, "--format", "table", "--limit", "400", columns=200)
    assert "mitigated" in shown.stdout
    html = tmp_path / "r.html"
    done = run("report", "--db", db, "--scan", checked.scan_id, "--format", "html", "-o", str(html))
    assert done.returncode == 0, done.stderr
    page = html.read_text("utf-8")
    table_html = page[page.index('id="t-cve"') :]
    assert '<th class="num">Mitigated</th>' in table_html[: table_html.index("</thead>")]
    cve, count = mitigated.most_common(1)[0]
    row = re.search(rf"<tr><td>{cve}.*?</tr>", table_html)
    assert row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(0))
    # assessed, vulnerable, patched, mitigated, undetermined
    assert cells[-2] == str(count), cells

    with serving(db) as site:
        listed = site.get(f"/api/cves?scan={checked.scan_id}").json()
        assert {r["cve"]: r["mitigated"] for r in listed["rows"] if r["mitigated"]} == dict(
            mitigated
        )
        text = site.get(f"/cves/{cve}?scan={checked.scan_id}").text
        assert f"{count} mitigated (a mitigation seen, not patched)" in text

    # notify: the hosts it writes about name their mitigated CVEs apart, never as vulnerable
    code, _ = notify(db, tmp_path / "out", "2026-12-01T09:00:00Z", "--dry-run",
                     constituency=checked.constituency)  # fmt: skip
    assert code == 0
    (message,) = messages(tmp_path / "out")
    by_ip = {r["ip"]: r for r in checked.records}
    rows_csv = list(csv.DictReader(io.StringIO(csv_of(message).lstrip("\ufeff"))))
    seen = 0
    for r in rows_csv:
        want = sorted(c for c, v in by_ip[r["ip"]]["cves"].items() if v == "mitigated")
        assert r["mitigated_cves"].split() == want, r["ip"]
        assert not set(want) & set(r["vulnerable_cves"].split())
        seen += bool(want)
    assert seen > 0
    assert "Mitigated (a mitigation answered; the update is still needed):" in text_of(message)

    # export: a mitigated CVE is not tagged as a vulnerability of the host
    shadow = run("export", "--db", db, "--scan", checked.scan_id, "--all-exchange")
    assert shadow.returncode == 0, shadow.stderr
    for r in csv.DictReader(io.StringIO(shadow.stdout)):
        tags = set(r["tag"].split(";"))
        lowered = {c.lower() for c, v in by_ip[r["ip"]]["cves"].items() if v == "mitigated"}
        assert not tags & lowered, r["ip"]
