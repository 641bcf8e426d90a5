"""What the messages say, to whom, in which language, and that nothing a server sent can
break out of its place: dry runs through the CLI, the .eml files parsed back with `email`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from exwatch.notify.remedy import cve_facts
from exwatch.store import open_store
from tests.notify.records import (
    HOSTILE,
    OLD,
    OLDER,
    exchange,
    not_exchange,
    online,
    store_with,
    suspect,
)
from tests.notify.runs import csv_of, html_of, messages, notify, text_of

RODE, BRUX, EUPEN, PORT = (
    "Gemeente Sint-Genesius-Rode",
    "Région de Bruxelles-Capitale",
    "Gemeinde Eupen",
    "Port of Antwerp",
)
NOW = "2026-03-02T09:00:00Z"


def _census() -> dict[str, list[dict[str, object]]]:
    when = "2026-03-01"
    return {
        "census": [
            exchange("census", "193.190.10.1", when, OLD, hostname="mail.rode.example"),
            exchange("census", "193.190.10.2", when, OLDER),
            exchange("census", "193.190.20.1", when, OLD),
            exchange("census", "193.190.30.1", when, OLDER),
            exchange("census", "193.190.40.1", when, OLD),
            exchange("census", "193.190.50.1", when, OLD),  # in the constituency, no contact
            exchange("census", "8.8.8.8", when, OLD),  # nobody's
            exchange("census", "193.190.10.3", when, "15.2.2562.53"),  # up to date
            not_exchange("census", "193.190.10.4", when),
        ]
    }


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_dry_run_writes_one_message_per_contact_in_its_language(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db, const = store_with(tmp_path, kind, request, _census())
    out = tmp_path / "review"
    code, index = notify(db, out, NOW, constituency=const)
    assert code == 0
    found = {m["To"].addresses[0].display_name: m for m in messages(out)}
    assert set(found) == {RODE, BRUX, EUPEN, PORT}
    assert {o: m["Content-Language"] for o, m in found.items()} == {
        RODE: "nl", BRUX: "fr", EUPEN: "de", PORT: "en",  # fr-BE uses fr; none: --language
    }  # fmt: skip
    rode = found[RODE]
    assert rode["To"].addresses[0].addr_spec == "ict@rode.example"
    assert rode["Subject"] == (
        "[CERT.be] kwetsbare Microsoft Exchange-servers (2) – Gemeente Sint-Genesius-Rode"
    )
    assert found[BRUX]["Subject"].endswith("(1) – Région de Bruxelles-Capitale")
    assert b"R=C3=A9gion" in found[BRUX].as_bytes() or b"=?utf-8?" in found[BRUX].as_bytes()
    sender = rode["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("CERT.be", "cert@cert.example")
    assert rode["Message-ID"].startswith("<exwatch.")
    assert rode["Message-ID"].endswith("@cert.example>")
    assert rode["Auto-Submitted"] == "auto-generated"
    text = text_of(rode)
    assert "Beste Gemeente Sint-Genesius-Rode," in text
    assert "193.190.10.1:443 (mail.rode.example)" in text
    assert "193.190.10.2:443" in text
    assert "193.190.10.3" not in text  # up to date: nothing to say
    cvss = cve_facts("CVE-2021-34473").cvss  # the catalogue's score
    assert f"CVE-2021-34473 ProxyShell, CVSS {cvss}, ACTIEF MISBRUIKT (CISA KEV)" in text
    assert "https://msrc.microsoft.com/update-guide/vulnerability/CVE-2021-34473" in text
    # What to install comes from the catalogue, with Microsoft's page.
    assert "migreer naar Exchange Server SE" in text
    assert (
        "https://learn.microsoft.com/exchange/new-features/build-numbers-and-release-dates" in text
    )
    html = html_of(rode)
    assert '<html lang="nl">' in html
    assert "193.190.10.2:443" in html
    rows = list(csv.DictReader(io.StringIO(csv_of(rode).lstrip("\ufeff"))))
    assert [r["ip"] for r in rows] == ["193.190.10.2", "193.190.10.1"]  # most KEV first
    assert "CVE-2021-34473" in rows[0]["vulnerable_cves"].split()
    assert rows[0]["build"] == OLDER
    assert rows[0]["install"].startswith("upgrade to Exchange Server SE")
    assert "Sehr geehrte Damen und Herren," in text_of(found[EUPEN])
    assert "À l'attention de Région de Bruxelles-Capitale," in text_of(found[BRUX])
    # Hosts that no message carries are listed, never dropped.
    no_contact = list(csv.DictReader(io.StringIO((out / "no-contact.csv").read_text("utf-8"))))
    assert {r["ip"]: r["reason"] for r in no_contact} == {
        "193.190.50.1": "no contact in the constituency or contacts file",
        "8.8.8.8": "no contact in the constituency or contacts file",
    }
    assert index["counts"]["no_contact"] == 2
    assert [r["state"] for r in index["messages"]] == ["planned"] * 4
    # A dry run records nothing about messages.
    with open_store(db, create=False) as store:
        assert store.scalar("SELECT count(*) FROM notifications") == 0
        assert store.scalar("SELECT count(*) FROM notify_cases") == 0


def test_exchange_online_and_suspect_hosts_are_never_notified(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    scans = {
        "census": [
            online("census", "193.190.10.1", "2026-03-01"),
            suspect("census", "193.190.10.2", "2026-03-01"),
            exchange("census", "193.190.10.5", "2026-03-01", OLD),
        ]
    }
    db, const = store_with(tmp_path, "duckdb", request, scans)
    code, index = notify(db, tmp_path / "out", NOW, constituency=const)
    assert code == 0
    (message,) = messages(tmp_path / "out")
    text = text_of(message)
    assert "193.190.10.5" in text
    assert "193.190.10.1" not in text
    assert "193.190.10.2" not in text
    assert (index["counts"]["exchange_online_skipped"], index["counts"]["suspect_skipped"]) == (
        1,
        1,
    )


def test_a_compromise_state_is_reported_first_and_plainly(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    shell = {
        "state": "compromised",
        "findings": [
            {"path": "/aspnet_client/system_web/errorFE.aspx", "evidence": "China Chopper form"}
        ],
    }
    scans = {
        "census": [
            # Patched, yet a web shell answers: still a message, about the compromise.
            exchange("census", "193.190.30.1", "2026-03-01", "15.2.2562.53", compromise=shell),
            exchange("census", "193.190.30.2", "2026-03-01", OLD,
                     compromise={"state": "clean-at-known-paths", "findings": []}),
            exchange("census", "193.190.30.3", "2026-03-01", OLD, compromise={"state": "unknown"}),
        ]
    }  # fmt: skip
    db, const = store_with(tmp_path, "duckdb", request, scans)
    code, _ = notify(db, tmp_path / "out", NOW, "--language", "en", constituency=const)
    assert code == 0
    (message,) = messages(tmp_path / "out")
    assert message["Subject"] == (
        "[CERT.be] möglicherweise kompromittierte Microsoft-Exchange-Server (3) – Gemeinde Eupen"
    )
    text = text_of(message)
    assert "WICHTIG: 1 dieser Server zeigt Anzeichen einer Kompromittierung" in text
    first = text.index("193.190.30.1")
    assert first < text.index("193.190.30.2") < text.index("193.190.30.3")
    assert "/aspnet_client/system_web/errorFE.aspx: China Chopper form" in text
    assert "Web-Shells:  keine unter den aus den Kampagnen von 2021 bekannten Pfaden" in text
    assert "unsere Prüfung war nicht eindeutig" in text
    rows = {r["ip"]: r for r in csv.DictReader(io.StringIO(csv_of(message).lstrip("\ufeff")))}
    assert rows["193.190.30.1"]["compromise"] == "compromised"
    assert rows["193.190.30.1"]["vulnerable_cves"] == ""
    assert rows["193.190.30.2"]["compromise"] == "clean-at-known-paths"


def test_server_strings_cannot_inject_headers_escapes_markup_or_formulas(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    formula = '=HYPERLINK("http://evil.example","x")'
    shell = {"state": "compromised", "findings": [{"path": "/x.aspx\r\nBcc: a@b.example",
             "evidence": "<img src=x onerror=alert(1)>\x1b[31m"}]}  # fmt: skip
    scans = {
        "census": [
            exchange("census", "193.190.10.1", "2026-03-01", OLD, hostname=HOSTILE),
            exchange("census", "193.190.10.2", "2026-03-01", OLD, hostname=formula,
                     compromise=shell),
        ]
    }  # fmt: skip
    db, const = store_with(tmp_path, "duckdb", request, scans)
    code, index = notify(db, tmp_path / "out", NOW, constituency=const)
    assert code == 0
    raw = next((tmp_path / "out" / "messages").glob("*.eml")).read_bytes()
    (message,) = messages(tmp_path / "out")
    # One header block: nothing a server sent starts a header.
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "Bcc" not in head
    assert "evil" not in head
    assert message["Bcc"] is None
    assert {k for k in message} == {
        "From", "To", "Subject", "Date", "Message-ID", "Content-Language", "Auto-Submitted",
        "List-Unsubscribe", "X-Exwatch-Reference", "X-Exwatch-Kind", "MIME-Version",
        "Content-Type",
    }  # fmt: skip
    text = text_of(message)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\u202e" not in text
    assert "\\x1b[2J\\x1b]8;;http://evil.example\\x07evil\\x0d\\x0aBcc: victim@example.org" in text
    assert "\\u202e<script>" in text
    assert "/x.aspx\\x0d\\x0aBcc: a@b.example" in text
    html = html_of(message)
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;\\x1b[31m" in html
    rows = {r["ip"]: r for r in csv.DictReader(io.StringIO(csv_of(message).lstrip("\ufeff")))}
    assert rows["193.190.10.2"]["hostname"] == "'" + formula
    assert "\x1b" not in rows["193.190.10.1"]["hostname"]
    index_csv = (tmp_path / "out" / "index.csv").read_text(encoding="utf-8")
    assert "\x1b" not in index_csv
    assert index["messages"][0]["hosts"] == 2


def test_templates_can_be_overridden_and_languages_added(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    scans = {"census": [exchange("census", "193.190.10.1", "2026-03-01", OLD,
                                 hostname="mail.\x1bevil.example")]}  # fmt: skip
    constituency = (
        "match,organisation,sector,country,contact,language\n"
        "193.190.10.0/24,Gmina Przykładowa,municipality,PL,it@gmina.example,pl\n"
    )
    db, const = store_with(tmp_path, "duckdb", request, scans, constituency)
    # Without Polish templates: the default language, and the index says why.
    code, index = notify(db, tmp_path / "plain", NOW, constituency=const)
    assert code == 0
    assert index["messages"][0]["language"] == "en"
    assert index["messages"][0]["language_note"] == "no template for pl; sent in en"
    # A folder adds Polish and overrides the English subject.
    folder = tmp_path / "templates"
    (folder / "pl").mkdir(parents=True)
    (folder / "en").mkdir()
    (folder / "en" / "subject.txt.j2").write_text("[{{ sender.name }}] custom\n", "utf-8")
    (folder / "pl" / "subject.txt.j2").write_text(
        "[{{ sender.name }}] Podatne serwery Exchange ({{ counts.hosts }})\n", "utf-8"
    )
    (folder / "pl" / "body.txt.j2").write_text(
        "{% for h in hosts %}{{ h.address }} {{ h.hostname }}\n{% endfor %}", "utf-8"
    )
    (folder / "pl" / "body.html.j2").write_text(
        "<p>{% for h in hosts %}{{ h.hostname }}{% endfor %}</p>", "utf-8"
    )
    code, index = notify(db, tmp_path / "pl", NOW, "--templates", str(folder),
                         constituency=const)  # fmt: skip
    assert code == 0
    (message,) = messages(tmp_path / "pl")
    assert message["Content-Language"] == "pl"
    assert message["Subject"] == "[CERT.be] Podatne serwery Exchange (1)"
    # An override gets the same safety: values are made safe before any template sees them.
    assert text_of(message) == "193.190.10.1:443 mail.\\x1bevil.example\n"
    # A broken override fails at start, naming the file, before anything is written.
    (folder / "pl" / "body.txt.j2").write_text("{{ hosts[0].no_such_field }}", "utf-8")
    code, _ = notify(db, tmp_path / "broken", NOW, "--templates", str(folder),
                     constituency=const)  # fmt: skip
    assert code == 1
    assert not (tmp_path / "broken" / "messages").exists()


def test_limits_defer_messages_most_urgent_first(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db, const = store_with(tmp_path, "duckdb", request, _census())
    code, index = notify(db, tmp_path / "out", NOW, "--max-messages", "2", constituency=const)
    assert code == 0
    states = [(r["organisation"], r["state"]) for r in index["messages"]]
    assert [s for _, s in states] == ["planned", "planned", "deferred", "deferred"]
    # The two with ProxyShell-era (more KEV) builds go first.
    assert {o for o, s in states if s == "planned"} == {RODE, EUPEN}
    assert "over --max-messages 2" in index["messages"][2]["detail"]
    assert len(messages(tmp_path / "out")) == 2


def test_out_folder_is_not_overwritten_by_accident(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db, const = store_with(tmp_path, "duckdb", request, _census())
    out = tmp_path / "out"
    assert notify(db, out, NOW, constituency=const)[0] == 0
    code, _ = notify(db, out, NOW, constituency=const)
    assert code == 2
    assert notify(db, out, NOW, "--force", "--max-messages", "1", constituency=const)[0] == 0
    assert len(messages(out)) == 1
    assert len(json.loads((out / "index.json").read_text())["messages"]) == 4


def test_the_command_in_a_pipe(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    import subprocess
    import sys

    from tests.notify.smtpd import ROOT

    db, const = store_with(tmp_path, "duckdb", request, _census())
    base = [sys.executable, "-m", "exwatch", "notify", "--db", db, "--constituency", str(const),
            "--now", NOW, "--from", "CERT.be <cert@cert.example>"]  # fmt: skip
    proc = subprocess.run([*base, "-o", str(tmp_path / "a"), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["mode"], summary["messages"], summary["no_contact"]) == ("dry-run", 4, 2)
    assert summary["languages"] == {"nl": 1, "fr": 1, "de": 1, "en": 1}
    proc = subprocess.run([*base, "-o", str(tmp_path / "b")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0
    assert "4 messages written for review (4 initial; languages: 1 de, 1 en, 1 fr, 1 nl)" in (
        proc.stdout
    )
    assert "no contact: 2 hosts (see no-contact.csv)" in proc.stdout
    proc = subprocess.run([*base, "-o", str(tmp_path / "c"), "--now", "yesterday"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "--now 'yesterday' is not an ISO 8601 time" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "exwatch", "notify", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0
    assert "EXWATCH_SMTP_USER" in proc.stdout
    assert "--password" not in proc.stdout
