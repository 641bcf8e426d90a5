"""One on-prem predicate: report, export, notify and the web pages count the same hosts
of the same store, on both backends.  The store holds the checked lab scan plus two
records other writers produce (ingested into the same scan): an Exchange object beside an
Exchange Online marking, and one beside a `suspect` marking; neither is on-prem."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.notify.runs import csv_of, messages, notify
from tests.seams.lab import Checked, run
from tests.web.server import serving

pytestmark = pytest.mark.slow


def _mixed(checked: Checked, folder: Path) -> Path:
    """A vulnerable on-prem record at new addresses, marked Exchange Online / suspect with
    the markings the lab scan recorded for such hosts."""
    records = checked.records
    base = next(
        r
        for r in records
        if r["exchange"]
        and "vulnerable" in r["cves"].values()
        and r["ip"] not in checked.compromised()
    )
    online = next(r["exchange_online"] for r in records if r.get("exchange_online"))
    suspect = next(r["suspect"] for r in records if r.get("suspect"))
    lines = []
    for ip, key, value in (("127.31.5.1", "exchange_online", online),
                           ("127.31.5.2", "suspect", suspect)):  # fmt: skip
        rec = json.loads(json.dumps(base))
        rec.update(ip=ip, checks=None, **{key: value})
        lines.append(json.dumps(rec))
    path = folder / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _on_prem(record: dict[str, Any]) -> bool:
    # Spelled out here rather than imported: the test states what the views must agree on.
    return (
        bool(record.get("exchange"))
        and not record.get("exchange_online")
        and not (record.get("suspect"))
    )


def test_report_export_notify_and_web_count_the_same_hosts(
    checked: Checked, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = checked.store(backend, tmp_path, request)
    mixed = _mixed(checked, tmp_path)
    for args in (("ingest", "--db", db, str(mixed)),
                 ("enrich", "--db", db, "--constituency", str(checked.constituency))):  # fmt: skip
        done = run(*args)
        assert done.returncode == 0, done.stderr
    records = [*checked.records, *map(json.loads, mixed.read_text().splitlines())]
    on_prem = {r["ip"] for r in records if _on_prem(r)}
    vulnerable = {r["ip"] for r in records if _on_prem(r) and "vulnerable" in r["cves"].values()}
    compromised = checked.compromised()
    assert "127.31.5.1" not in on_prem
    assert len(on_prem) > 50

    # report
    done = run("report", "--db", db, "--scan", checked.scan_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert sum(r["exchange"] for r in rows) == len(on_prem)
    assert sum(r["vulnerable"] for r in rows) == len(vulnerable)
    done = run("report", "--db", db, "--scan", checked.scan_id, "--view", "compromise",
               "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sum(r["compromised"] for r in json.loads(done.stdout)) == len(compromised)

    # export
    done = run("export", "--db", db, "--scan", checked.scan_id, "--all-exchange",
               "--format", "jsonl")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["ip"] for line in done.stdout.splitlines()} == on_prem

    # web
    with serving(db) as site:
        totals = site.get(f"/api/overview?scan={checked.scan_id}").json()["totals"]
        assert (totals["exchange"], totals["vulnerable"]) == (len(on_prem), len(vulnerable))
        assert totals["compromised"] == len(compromised)
        listed = site.get(f"/api/hosts?scan={checked.scan_id}&show=exchange&per_page=500")
        assert {r["ip"] for r in listed.json()["rows"]} == on_prem

    # notify: every vulnerable or compromised on-prem host, and no other
    code, index = notify(db, tmp_path / "out", "2026-12-01T09:00:00Z", "--dry-run",
                         constituency=checked.constituency)  # fmt: skip
    assert code == 0
    (message,) = messages(tmp_path / "out")
    listed_ips = {r["ip"] for r in csv.DictReader(io.StringIO(csv_of(message).lstrip("\ufeff")))}
    assert listed_ips == vulnerable | compromised
    assert index["counts"]["hosts"] == len(vulnerable | compromised)
