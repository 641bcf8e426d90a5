"""A host the opt-in checks found compromised (`scan --check`) is reported as such by
`exwatch notify`: in the message, in its CSV attachment, and as a tracked case, on both
store backends."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from exwatch.store import open_store
from tests.notify.pki import TestCA
from tests.notify.runs import csv_of, html_of, notify, text_of
from tests.notify.smtpd import smtp_server
from tests.seams.lab import CONTACT, Checked
from tests.web.server import serving

pytestmark = pytest.mark.slow
NOW = "2026-12-01T09:00:00Z"


def test_compromised_hosts_are_notified_and_tracked(
    checked: Checked, backend: str, tmp_path: Path, request: pytest.FixtureRequest,
    test_ca: TestCA,
) -> None:  # fmt: skip
    compromised = checked.compromised()
    assert len(compromised) >= 3  # the lab plants shells of several shapes
    db = checked.store(backend, tmp_path, request)
    with smtp_server(tmp_path, test_ca) as server:
        code, index = notify(
            db, tmp_path / "sent", NOW, "--send", *server.args(),
            constituency=checked.constituency,
        )  # fmt: skip
        assert code == 0
        (item,) = index["messages"]
        assert item["compromised"] == len(compromised)
        (received,) = server.received()
    assert received.rcpt_tos == [CONTACT]
    message = received.message
    assert message["Subject"].startswith("[CERT.be] possibly compromised Microsoft Exchange")
    text = text_of(message)
    assert f"IMPORTANT: {len(compromised)} of these servers show signs of compromise" in text
    by_ip = {r["ip"]: r for r in checked.records}
    for ip in compromised:
        for finding in by_ip[ip]["checks"]["compromise"]["findings"]:
            assert finding["path"] in text, ip
            assert finding["path"] in html_of(message), ip
    rows = csv.DictReader(io.StringIO(csv_of(message).lstrip("\ufeff")))
    states = {r["ip"]: r["compromise"] for r in rows}
    assert {ip for ip, state in states.items() if state == "compromised"} == compromised
    with open_store(db, read_only=True) as store:
        cases = store.query("SELECT ip FROM notify_cases WHERE finding = 'compromise'")
    assert {str(ip) for (ip,) in cases} == compromised
    # The web's host page lists the message sent about the host.
    with serving(db) as site:
        for ip in compromised:
            sent = site.get(f"/api/hosts/{ip}").json()["notifications"]
            assert [n["message_id"] for n in sent] == [message["Message-ID"]], ip
