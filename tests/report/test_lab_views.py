"""The patch lag, KEV and CVE views on a real scan of the lab (loopback only), stored in each
backend, checked against what the scan's own JSON lines say host by host
(`exwatch.exposure`: the records' KEV hits and patch lag) and rendered in the HTML report."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exwatch.cli import main
from exwatch.exposure import kev_hits, month_bucket, months_behind
from exwatch.lab import Lab
from exwatch.scan.job import ScanJob, execute
from tests.lab.running import free_port
from tests.store.backends import BACKENDS, new_target, pg_database  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab_scan(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("labviews")
    out = folder / "scan.jsonl"
    with Lab(hosts=150, port=free_port(), seed=23, workdir=folder / "lab") as lab:
        summary = execute(
            ScanJob(
                specs=list(lab.cidr),
                port=lab.port,
                timeout=2.0,
                concurrency=100,
                allow_private=True,
                output=str(out),
                db=None,
            )
        )
    assert not summary.interrupted
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return out, records


@pytest.fixture(scope="module", params=BACKENDS)
def lab_store(
    lab_scan: tuple[Path, list[dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> tuple[str, list[dict[str, Any]]]:
    path, records = lab_scan
    db = new_target(request.param, tmp_path_factory.mktemp("labstore"), request, "lab")
    assert main(["ingest", "--db", db, str(path)]) == 0
    return db, records


def _report(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["report", "--db", db, *args, "--format", "json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def _exchange(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["status"] == "success" and r.get("exchange")]


def test_lab_kev_hosts_are_the_records_kev_hits(lab_store, capsys) -> None:
    db, records = lab_store
    want = {(r["ip"], r["port"]): kev_hits(r) for r in _exchange(records) if kev_hits(r)}
    assert len(want) >= 10, "the lab should hold servers with known-exploited CVEs"
    got = _report(capsys, db, "--by", "kev")
    assert {(h["ip"], h["port"]): h["kev_cves"] for h in got} == want
    totals = _report(capsys, db)
    assert sum(r["kev"] for r in totals) == len(want)


def test_lab_months_distribution_matches_the_records(lab_store, capsys) -> None:
    db, records = lab_store
    hosts = _exchange(records)
    got = {r["key"]: r for r in _report(capsys, db, "--by", "months")}
    assert sum(r["exchange"] for r in got.values()) == len(hosts)
    # Hosts whose exact build is known: the record's own lag, bucket by bucket.
    exact = Counter(
        month_bucket(months_behind(r))
        for r in hosts
        if r["exchange"].get("patch_lag") and r["exchange"]["patch_lag"]["exact"]
    )
    assert sum(exact.values()) >= 20
    assert {k: r["exact"] for k, r in got.items() if r["exact"]} == dict(exact)
    placed = sum(1 for r in hosts if r["exchange"].get("patch_lag"))
    assert got["unknown"]["exchange"] == len(hosts) - placed
    # CU-level hosts count as their CU's newest update: never further behind than the
    # record's upper bound says.
    by_build = {r["key"]: r for r in _report(capsys, db, "--by", "version")}
    for r in hosts:
        lag = r["exchange"].get("patch_lag")
        if lag and not lag["exact"]:
            row = by_build[r["exchange"]["build"]]
            assert row["median_months_behind"] <= months_behind(r), r["exchange"]["build"]


def test_lab_by_cve_matches_the_records(lab_store, capsys) -> None:
    db, records = lab_store
    hosts = _exchange(records)
    rows = {r["key"]: r for r in _report(capsys, db, "--by", "cve")}
    assert len(rows) >= 100  # the whole catalogue is assessed on every build
    for cve, row in rows.items():
        verdicts = Counter(r["cves"].get(cve) for r in hosts)
        assert (row["vulnerable"], row["patched"], row["undetermined"]) == (
            verdicts["vulnerable"], verdicts["patched"], verdicts["undetermined"],
        ), cve  # fmt: skip
    kev = _report(capsys, db, "--by", "cve", "--kev")
    assert {r["key"] for r in kev} == {k for k, r in rows.items() if r["kev"]}
    assert all(r["fixed_by"] and r["kev_added"] for r in kev)


def test_lab_html_report_has_the_views(lab_store, tmp_path, capsys) -> None:
    db, records = lab_store
    out = tmp_path / "report.html"
    assert main(["report", "--db", db, "--format", "html", "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    kev_ips = {r["ip"] for r in _exchange(records) if kev_hits(r)}
    body = page[
        page.index('id="t-kev-hosts"') : page.index("</table>", page.index('id="t-kev-hosts"'))
    ]
    assert set(re.findall(r"<tr><td>([0-9.]+)</td>", body)) == kev_ips
    assert 'id="t-months"' in page
    assert 'id="t-lag-country"' in page
    card = re.search(r'id="card-kev"><div class="n">([0-9,]+)</div>', page)
    assert card is not None
    assert int(card.group(1).replace(",", "")) == len(kev_ips)
    assert "Exchange servers by months behind the newest update" in page
