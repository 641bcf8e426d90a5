"""Reports of the opt-in checks on both store backends: compromised hosts per country, AS,
sector and organisation (with each group's share), mitigated vs vulnerable per CVE, the
compromised hosts, the HTML section and the Shadowserver-style export, from a real scan
of the lab, checked against the scan's own records."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exwatch.checks import catalogue
from exwatch.cli import main
from exwatch.lab import Lab
from exwatch.report import compromise
from exwatch.scan.job import ScanJob, execute
from exwatch.store import open_store

from ..enrich.conftest import write_mmdb
from ..lab.running import free_port
from ..store.backends import BACKENDS, new_target, pg_database

__all__ = ["pg_database"]  # the PostgreSQL fixture, used through new_target

pytestmark = pytest.mark.slow

BASE = "127.26.0.1"
HOSTS = 160
SCAN = "checked-census"
# The lab's addresses split between three countries and two networks.
PLACES = (("127.26.0.0/26", "DE", 64501), ("127.26.0.64/27", "BE", 64502))
ELSEWHERE = ("127.26.0.0/16", "NL", 64503)


def _place(ip: str) -> tuple[str, int]:
    addr = ipaddress.ip_address(ip)
    for net, cc, asn in PLACES:
        if addr in ipaddress.ip_network(net):
            return cc, asn
    return ELSEWHERE[1], ELSEWHERE[2]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The lab scanned once with every check: (JSON lines file, records)."""
    folder = tmp_path_factory.mktemp("checked-scan")
    out = folder / "r.jsonl"
    with Lab(
        hosts=HOSTS, port=free_port(), seed=9, base=BASE, workdir=folder / "lab", backend="python"
    ) as lab:
        job = ScanJob(
            specs=list(lab.cidr), port=lab.port, timeout=2.0, concurrency=100,
            allow_private=True, output=str(out), db=None, workers=1,
            checks=list(catalogue.check_ids()), scan_id=SCAN,
        )  # fmt: skip
        assert not execute(job).interrupted
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    return out, records


def _sources(folder: Path) -> list[str]:
    """--geo-db, --asn-db and --constituency files placing the lab's addresses."""
    geo = {net: cc for net, cc, _ in PLACES}
    asns = {net: asn for net, _, asn in PLACES}
    # more specific networks override the covering one
    networks = [(ELSEWHERE[0], ELSEWHERE[1], ELSEWHERE[2])] + [(n, geo[n], asns[n]) for n in geo]
    country = {
        n: {"country": {"iso_code": cc}, "registered_country": {"iso_code": cc}}
        for n, cc, _ in networks
    }
    asn = {
        n: {"autonomous_system_number": a, "autonomous_system_organization": f"Lab AS {a}"}
        for n, _, a in networks
    }
    write_mmdb(folder / "country.mmdb", "GeoLite2-Country", country)
    write_mmdb(folder / "asn.mmdb", "GeoLite2-ASN", asn)
    (folder / "constituency.csv").write_text(
        "match,organisation,sector,country\n"
        "127.26.0.0/26,Stadt Lab,municipality,DE\n127.26.0.64/27,Hospital Lab,health,BE\n",
        encoding="utf-8",
    )
    return [
        "--geo-db", str(folder / "country.mmdb"), "--asn-db", str(folder / "asn.mmdb"),
        "--constituency", str(folder / "constituency.csv"),
    ]  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    scanned: tuple[Path, list[dict[str, Any]]],
) -> tuple[str, list[str], Path]:
    folder = tmp_path_factory.mktemp("checked-store")
    target = new_target(str(request.param), folder, request)
    sources = _sources(folder)
    assert main(["ingest", "--db", target, str(scanned[0])]) == 0
    assert main(["enrich", "--db", target, *sources]) == 0
    return target, sources, folder


def _html(target: str, out: Path) -> None:
    """The HTML report, rendered in this process (the world map's shapes are read as data,
    so nothing is left behind in the import system)."""
    assert main(["report", "--db", target, "--format", "html", "-o", str(out)]) == 0


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(["report", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def _checked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if (r.get("checks") or {}).get("ran")]


def test_compromised_per_country_with_shares(
    store: tuple[str, list[str], Path],
    scanned: tuple[Path, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, _, _ = store
    checked = _checked(scanned[1])
    want: dict[str, Counter[str]] = {}
    for r in checked:
        cc, _ = _place(r["ip"])
        want.setdefault(cc, Counter())[r["checks"]["compromise"]["state"]] += 1
    total = sum(c["compromised"] for c in want.values())
    assert total >= 5  # the lab plants several shells
    rows = _json(capsys, "--db", target, "--view", "compromise", "--by", "country")
    got = {r["key"]: r for r in rows}
    assert set(got) == set(want)
    for cc, counts in want.items():
        row = got[cc]
        assert row["checked"] == sum(counts.values())
        assert row["compromised"] == counts["compromised"]
        assert row["unknown"] == counts["unknown"]
        assert row["clean"] == counts["clean-at-known-paths"]
        assert row["share_pct"] == round(100 * counts["compromised"] / total, 1)
        assert row["geo_source"].startswith("GeoLite2-Country")
    # most compromised first; the shares add up to the whole
    assert [r["compromised"] for r in rows] == sorted(
        (r["compromised"] for r in rows), reverse=True
    )
    assert abs(sum(r["share_pct"] for r in rows) - 100) < 0.5
    # the same in CSV, and the table says the headline
    assert main(["report", "--db", target, "--view", "compromise", "--format", "csv"]) == 0
    lines = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {(r["key"], int(r["compromised"])) for r in lines} == {
        (r["key"], r["compromised"]) for r in rows
    }
    assert main(["report", "--db", target, "--view", "compromise"]) == 0
    table = capsys.readouterr().out
    top = rows[0]
    assert f"{total} of {len(checked)} checked hosts compromised" in " ".join(table.split())
    assert f"{top['share_pct']:.1f} % of them in country {top['key']}" in " ".join(table.split())


def test_per_as_sector_and_organisation(
    store: tuple[str, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target, _, _ = store
    by = {
        b: _json(capsys, "--db", target, "--view", "compromise", "--by", b)
        for b in ("country", "asn", "sector", "organisation")
    }
    totals = {b: sum(r["compromised"] for r in rows) for b, rows in by.items()}
    assert len(set(totals.values())) == 1
    assert {r["key"] for r in by["asn"]} == {64501, 64502, 64503}
    assert {r["name"] for r in by["asn"]} == {"Lab AS 64501", "Lab AS 64502", "Lab AS 64503"}
    assert {"municipality", "health"} <= {r["key"] for r in by["sector"]}
    assert {"Stadt Lab", "Hospital Lab"} <= {r["key"] for r in by["organisation"]}
    de = next(r for r in by["country"] if r["key"] == "DE")
    stadt = next(r for r in by["organisation"] if r["key"] == "Stadt Lab")
    assert (stadt["checked"], stadt["compromised"]) == (de["checked"], de["compromised"])


def test_mitigated_vs_vulnerable_per_cve(
    store: tuple[str, list[str], Path],
    scanned: tuple[Path, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, _, _ = store
    checked = _checked(scanned[1])
    rows = {
        r["key"]: r for r in _json(capsys, "--db", target, "--view", "compromise", "--by", "cve")
    }
    assert set(rows) == set(compromise.behaviour_cves())
    for cve, row in rows.items():
        verdicts = Counter(r["cves"].get(cve) for r in checked if r["exchange"])
        assert row["vulnerable"] == verdicts["vulnerable"]
        assert row["mitigated"] == verdicts["mitigated"]
        assert row["patched"] == verdicts["patched"]
        settled = sum(1 for r in checked if cve in r["checks"]["settled"])
        assert row["settled"] == settled
    assert rows["CVE-2021-26855"]["mitigated"] > 0  # EOMT
    assert rows["CVE-2022-41040"]["mitigated"] > 0  # the ProxyNotShell rule


def test_compromised_hosts_list(
    store: tuple[str, list[str], Path],
    scanned: tuple[Path, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, _, _ = store
    want = {
        (r["ip"], r["port"]): sorted(f["path"] for f in r["checks"]["compromise"]["findings"])
        for r in _checked(scanned[1])
        if r["checks"]["compromise"]["state"] == "compromised"
    }
    rows = _json(capsys, "--db", target, "--view", "compromise", "--by", "host")
    assert {(r["ip"], r["port"]): sorted(r["shells"]) for r in rows} == want
    assert all(r["shapes"] and r["country"] for r in rows)


def test_html_report_has_the_compromise_section(
    store: tuple[str, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target, _, folder = store
    out = folder / "report.html"
    _html(target, out)
    page = out.read_text("utf-8")
    assert '<section id="compromise">' in page
    rows = _json(capsys, "--db", target, "--view", "compromise", "--by", "host")
    for r in rows:
        for shell in r["shells"]:
            assert shell in page
    assert "checked hosts compromised" in page


def test_shadowserver_export_of_compromised_hosts(
    store: tuple[str, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target, _, folder = store
    hosts = _json(capsys, "--db", target, "--view", "compromise", "--by", "host")
    out = folder / "webshells.csv"
    assert main(["export", "--db", target, "--compromised", "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8"))))
    assert len(rows) == sum(len(h["shells"]) for h in hosts)
    assert list(rows[0]) == [
        "timestamp", "severity", "ip", "protocol", "port", "hostname", "tag", "asn", "geo",
        "region", "city", "naics", "hostname_source", "sector", "version", "servername", "url",
    ]  # fmt: skip
    for row in rows:
        assert row["tag"] == "exchange;webshell"  # IntelMQ: exchange-server-webshell
        assert row["severity"] == "critical"
        assert row["url"].startswith(f"https://{row['ip']}:{row['port']}/")
        assert row["geo"] in ("DE", "BE", "NL")
    per = folder / "per-country"
    assert (
        main(["export", "--db", target, "--compromised", "--per", "country", "-o", str(per)]) == 0
    )
    files = sorted(p.name for p in per.iterdir())
    assert files
    assert all("-scan_exchange-" in name and name.endswith(".csv") for name in files)
    per_rows = sum(
        len(list(csv.DictReader(io.StringIO(p.read_text("utf-8"))))) for p in per.iterdir()
    )
    assert per_rows == len(rows)
    lines = folder / "webshells.jsonl"
    assert (
        main(["export", "--db", target, "--compromised", "--format", "jsonl", "-o", str(lines)])
        == 0
    )
    records = [json.loads(x) for x in lines.read_text("utf-8").splitlines()]
    assert {(r["ip"], r["port"]) for r in records} == {(h["ip"], h["port"]) for h in hosts}
    assert all(r["enrichment"] is not None for r in records)


def test_read_only_store_reads_the_same(
    store: tuple[str, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target, _, _ = store
    with open_store(target) as writable:
        rows, total = compromise.group_view(writable, SCAN, "country")
    with open_store(target, read_only=True) as read_only:
        again, total_again = compromise.group_view(read_only, SCAN, "country")
    assert [r.to_json() for r in again] == [r.to_json() for r in rows]
    assert total_again.to_json() == total.to_json()


def test_hostile_record_text_is_escaped_and_neutralised(
    tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record file (ingested from anywhere) whose checks hold script and formulas."""
    target = new_target("duckdb", tmp_path, request)
    record = {
        "schema_version": 1, "scan_id": "hostile", "ip": "192.0.2.7", "port": 443,
        "hostname": None, "timestamp": "2026-01-02T03:04:05.000Z", "duration_ms": 1.0,
        "status": "success", "error": None,
        "exchange": {"build": "15.1.2176.2", "precision": "su", "product": "Exchange Server 2016",
                     "cu": "CU19", "su": None, "eol": True, "known": True, "sources": [],
                     "builds_seen": ["15.1.2176.2"], "patch_lag": None, "basis": {}},
        "exchange_online": None, "suspect": None, "cves": {"CVE-2021-26855": "vulnerable"},
        "tls": None, "ntlm": None, "headers": {}, "http_status": 200,
        "checks": {
            "asked": ["webshells"], "ran": ["webshells"], "skipped": None, "requests": 3,
            "compromise": {"state": "compromised", "reason": "<script>alert(1)</script>",
                           "findings": [{"path": "/aspnet_client/<img src=x onerror=alert(1)>.aspx",
                                         "shape": "=cmd|' /C calc'!A0"}]},
            "behaviour": {"proxylogon": {"state": ["not", "a", "string"]}},
            "settled": "nonsense", "conflicts": [{"cve": 7}],
        },
    }  # fmt: skip
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    assert main(["ingest", "--db", target, str(path)]) == 0
    html = tmp_path / "r.html"
    _html(target, html)
    page = html.read_text("utf-8")
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    capsys.readouterr()
    assert (
        main(["report", "--db", target, "--view", "compromise", "--by", "host", "--format", "csv"])
        == 0
    )
    cells = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert cells[0]["shapes"].startswith("'=")  # a spreadsheet would have run it
