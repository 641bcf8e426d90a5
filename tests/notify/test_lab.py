"""Done when: on a lab census with a constituency file, `exwatch notify --dry-run` writes one
message per contact in the right language, and `--send` delivers them to the test SMTP
server exactly once."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from exwatch.lab import Lab
from tests.lab.running import free_port
from tests.notify.pki import TestCA
from tests.notify.runs import messages, notify, text_of
from tests.notify.smtpd import smtp_server

pytestmark = pytest.mark.slow

HOSTS = 120  # 127.16.0.1 - 127.16.0.120
AGENT = "exwatch-lab-census (contact cert@cert.example)"
ORGS = {  # block -> (organisation, contact, language); the last block has no contact
    "127.16.0.0/27": ("Gemeente Sint-Genesius-Rode", "ict@rode.example", "nl"),
    "127.16.0.32/27": ("Région de Bruxelles-Capitale", "csirt@bruxelles.example", "fr"),
    "127.16.0.64/27": ("Gemeinde Eupen", "it@eupen.example", "de"),
    "127.16.0.96/28": ("Port of Antwerp", "soc@port.example", "en"),
    "127.16.0.112/28": ("Nobody Listed", "", ""),
}


@pytest.fixture(scope="module")
def census(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    folder = tmp_path_factory.mktemp("labcensus")
    db, out = folder / "census.duckdb", folder / "census.jsonl"
    with Lab(hosts=HOSTS, port=free_port(), seed=11, workdir=folder / "lab") as lab:
        proc = subprocess.run(
            [sys.executable, "-m", "exwatch", "scan", *lab.cidr, "--port", str(lab.port),
             "--allow-private", "--timeout", "3", "--db", str(db), "-o", str(out), "-q",
             "--user-agent", AGENT],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    const = folder / "constituency.csv"
    lines = ["match,organisation,sector,country,contact,language"]
    lines += [
        f"{net},{org},municipality,BE,{mail},{lang}" for net, (org, mail, lang) in ORGS.items()
    ]
    const.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(db), const, out


def _expected(records_path: Path) -> dict[str, set[str]]:
    """Organisation -> the addresses the scan found vulnerable on-prem Exchange at."""
    out: dict[str, set[str]] = {}
    for line in records_path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        vulnerable = any(v == "vulnerable" for v in (rec.get("cves") or {}).values())
        if not rec.get("exchange") or not vulnerable:
            continue
        if rec.get("exchange_online") or rec.get("suspect"):
            continue
        ip = ipaddress.ip_address(rec["ip"])
        for net, (org, _, _) in ORGS.items():
            if ip in ipaddress.ip_network(net):
                out.setdefault(org, set()).add(rec["ip"])
    return out


def test_lab_census_dry_run_then_send_exactly_once(
    census: tuple[str, Path, Path], tmp_path: Path, test_ca: TestCA
) -> None:
    db, const, records = census
    expected = _expected(records)
    assert len(expected) == 5  # every block holds vulnerable servers
    now = "2026-11-24T09:00:00Z"

    code, index = notify(db, tmp_path / "review", now, "--dry-run", constituency=const)
    assert code == 0
    written = messages(tmp_path / "review")
    by_org = {m["To"].addresses[0].display_name: m for m in written}
    assert set(by_org) == set(expected) - {"Nobody Listed"}
    for net, (org, mail, lang) in ORGS.items():
        if not mail:
            continue
        message = by_org[org]
        assert message["Content-Language"] == lang, org
        assert [a.addr_spec for a in message["To"].addresses] == [mail]
        text = text_of(message)
        assert AGENT in " ".join(text.split())  # the agent the scan sent
        listed = {ip for ip in expected[org] if f"{ip}:" in text}
        assert listed == expected[org], org
        assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(net) for ip in listed)
    no_contact = (tmp_path / "review" / "no-contact.csv").read_text(encoding="utf-8")
    assert all(ip in no_contact for ip in expected["Nobody Listed"])
    assert index["counts"]["no_contact"] == len(expected["Nobody Listed"])

    with smtp_server(tmp_path, test_ca) as server:
        code, index = notify(db, tmp_path / "sent", now, "--send", *server.args(),
                             constituency=const)  # fmt: skip
        assert code == 0
        received = server.received()
        assert sorted(r.rcpt_tos[0] for r in received) == sorted(
            mail for _, mail, _ in ORGS.values() if mail
        )
        assert len({r.message["Message-ID"] for r in received}) == 4
        # What the server holds is what the review showed: languages, hosts, attachment.
        for item in received:
            org = item.message["To"].addresses[0].display_name
            assert item.message["Content-Language"] == by_org[org]["Content-Language"]
            assert item.message["Subject"] == by_org[org]["Subject"]
            text = text_of(item.message)
            assert {ip for ip in expected[org] if f"{ip}:" in text} == expected[org]
            (attachment,) = item.message.iter_attachments()
            rows = attachment.get_content().lstrip("\ufeff").splitlines()[1:]
            assert {r.split(",")[0] for r in rows} == expected[org]
        # Exactly once: the same census and clock again sends nothing.
        code, index = notify(db, tmp_path / "again", now, "--send", *server.args(),
                             constituency=const)  # fmt: skip
        assert code == 0
        assert index["messages"] == []
        assert len(server.received()) == 4
