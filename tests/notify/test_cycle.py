"""The census -> notify -> rescan -> remediation cycle on a real store (DuckDB, then
PostgreSQL) and a real SMTP server, with a simulated clock: nothing is sent twice, new
findings go out as follow-ups, reminders and the escalation come on time, fixed hosts
close their cases, and the remediation report says how long fixing took."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exwatch.cli import main
from exwatch.store import open_store
from tests.notify.pki import TestCA
from tests.notify.records import CURRENT, OLD, OLDER, exchange, store_with
from tests.notify.runs import notify
from tests.notify.smtpd import smtp_server

A, B, C, D = "193.190.10.1", "193.190.10.2", "193.190.20.1", "193.190.10.4"
RODE, BRUX = "Gemeente Sint-Genesius-Rode", "Région de Bruxelles-Capitale"


def _scans() -> dict[str, list[dict[str, object]]]:
    return {
        "s1": [
            exchange("s1", A, "2026-03-01", OLD),
            exchange("s1", B, "2026-03-01", OLDER),
            exchange("s1", C, "2026-03-01", OLD),
        ],
    }


def _later(folder: Path, db: str, name: str, when: str, hosts: dict[str, str]) -> None:
    from tests.notify.records import write

    path = write(folder, name, [exchange(name, ip, when, build) for ip, build in hosts.items()])
    assert main(["ingest", "--db", db, str(path)]) == 0


def _by_org(index: dict[str, object]) -> dict[str, dict[str, object]]:
    rows = index["messages"]
    assert isinstance(rows, list)
    return {str(r["organisation"]): r for r in rows if r["state"] != "deferred"}


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_notify_rescan_remind_escalate_close(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, test_ca: TestCA
) -> None:
    db, const = store_with(tmp_path, kind, request, _scans())
    policy = ["--remind-after", "14", "--escalate-after", "1",
              "--escalate-cc", "escalation@cert.example"]  # fmt: skip
    with smtp_server(tmp_path, test_ca) as server:
        send = ["--send", *server.args(), *policy]

        def run(name: str, now: str) -> tuple[int, dict[str, Any]]:
            return notify(db, tmp_path / name, now, *send, constituency=const)

        # Day 1: one message per contact, each in its language.
        code, index = run("r1", "2026-03-02T09:00:00Z")
        assert code == 0, index
        first = _by_org(index)
        assert set(first) == {RODE, BRUX}
        assert first[RODE]["kind"] == first[BRUX]["kind"] == "initial"
        assert (first[RODE]["language"], first[BRUX]["language"]) == ("nl", "fr")
        assert first[RODE]["hosts"] == 2
        assert first[BRUX]["hosts"] == 1
        assert len(server.received()) == 2

        # The same day again: nothing new, nothing twice.
        code, index = run("r1b", "2026-03-02T10:00:00Z")
        assert code == 0
        assert _by_org(index) == {}
        assert index["counts"]["not_due"] > 0
        assert len(server.received()) == 2

        # Next day's scan: A is patched, D is new, B and C are unchanged.
        _later(tmp_path, db, "s2", "2026-03-03", {A: CURRENT, B: OLDER, C: OLD, D: OLD})
        code, index = run("r2", "2026-03-03T09:00:00Z")
        assert code == 0
        second = _by_org(index)
        assert set(second) == {RODE}  # B and C are not due; D is new for a notified contact
        assert second[RODE]["kind"] == "follow-up"
        assert second[RODE]["hosts"] == 1
        assert set(index["counts"]["cases_closed"]) == {"patched", "updated"}  # all of A
        received = server.received()
        assert len(received) == 3
        follow_up = received[-1].message
        assert D in str(follow_up.get_body(("plain",)).get_content())  # type: ignore[union-attr]
        assert B not in str(follow_up.get_body(("plain",)).get_content())  # type: ignore[union-attr]

        # 14 days after the first messages: reminders for what later scans still show.
        _later(tmp_path, db, "s3", "2026-03-15", {B: OLDER, C: OLD, D: OLD})
        code, index = run("r3", "2026-03-16T08:30:00Z")
        assert code == 0
        assert _by_org(index) == {}  # 13 days 23.5 hours after the first: not yet
        code, index = run("r3b", "2026-03-17T09:00:00Z")
        assert code == 0
        third = _by_org(index)
        assert {o: r["kind"] for o, r in third.items()} == {RODE: "reminder", BRUX: "reminder"}
        assert third[RODE]["hosts"] == 2  # B (reported 03-02) and D (reported 03-03)
        assert len(server.received()) == 5

        # After one reminder the next one escalates, with the escalation address in Cc.
        _later(tmp_path, db, "s4", "2026-03-31", {B: OLDER, C: OLD, D: OLD})
        code, index = run("r4", "2026-04-01T09:00:00Z")
        assert code == 0
        fourth = _by_org(index)
        assert {o: r["kind"] for o, r in fourth.items()} == {RODE: "escalation", BRUX: "escalation"}
        received = server.received()
        assert len(received) == 7
        for item in received[-2:]:
            assert item.message["Cc"] == "escalation@cert.example"
            assert "escalation@cert.example" in item.rcpt_tos
            assert item.message["X-Exwatch-Kind"] == "escalation"

        # Past the escalation, the CERT follows up by hand: no more messages.
        code, index = run("r5", "2026-05-01T09:00:00Z")
        assert code == 0
        assert _by_org(index) == {}
        assert index["counts"]["escalated_before"] > 0
        received = server.received()
        assert len(received) == 7

    # Every message reached the server once, under the Message-ID the store recorded.
    ids = [r.message["Message-ID"] for r in received]
    assert len(set(ids)) == 7
    with open_store(db, create=False) as store:
        rows = store.query("SELECT message_id, state FROM notifications ORDER BY created_at")
        assert sorted(str(m) for m, _ in rows) == sorted(ids)
        assert {s for _, s in rows} == {"sent"}

    # B is fixed in a later scan; the remediation report sees it without another notify run.
    _later(tmp_path, db, "s5", "2026-04-10", {B: CURRENT, C: OLD, D: OLD})
    out = tmp_path / "remediation.json"
    code = main(["report", "--db", db, "--by", "organisation", "--remediation",
                 "--constituency", str(const), "--format", "json", "-o", str(out)])  # fmt: skip
    assert code == 0
    report = {r["key"]: r for r in json.loads(out.read_text())}
    rode, brux = report[RODE], report[BRUX]
    assert (rode["hosts_notified"], rode["fixed"], rode["still_vulnerable"]) == (3, 2, 1)
    assert rode["median_days_to_fix"] == pytest.approx((1.0 + 39.0) / 2)  # A 23 h, B 38 d 23 h
    assert (brux["hosts_notified"], brux["fixed"], brux["still_vulnerable"]) == (1, 0, 1)
    assert rode["reminders"] == 2
    assert rode["escalated"] == 2
    assert rode["first_notified"] == "2026-03-02T09:00:00Z"

    # The HTML report shows how fast notified hosts were fixed; without messages it has no
    # such section.
    page = tmp_path / "report.html"
    assert main(["report", "--db", db, "--format", "html", "-o", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert "Time to patch after notification (hosts fixed within)" in html
    assert "2 / 4" in html  # within 60 days: A (1 day) and B (39 days) of the 4 notified
    assert "Région de Bruxelles-Capitale" in html


def test_reports_without_notifications_have_no_remediation(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db, _const = store_with(tmp_path, "duckdb", request, _scans())
    page = tmp_path / "report.html"
    assert main(["report", "--db", db, "--format", "html", "-o", str(page)]) == 0
    assert 'id="remediation"' not in page.read_text(encoding="utf-8")
    out = tmp_path / "r.json"
    assert main(["report", "--db", db, "--by", "sector", "--remediation", "--format", "json",
                 "-o", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text()) == []
    assert main(["report", "--db", db, "--by", "cve", "--remediation"]) == 2
