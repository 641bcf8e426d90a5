"""Every page and its API twin on a real store (DuckDB, then PostgreSQL), through a real server."""

from __future__ import annotations

import csv
import io
from urllib.parse import quote

import pytest

from exwatch.web.security import CSP
from tests.web.records import HOSTILE, HOSTILE_IP, IP
from tests.web.server import Running

PAGES = [
    "/", "/countries", "/countries/BE", "/countries/BE?by=sector",
    "/countries/BE/sector/municipality",
    "/countries/NL/asn/~none", "/hosts", "/hosts?show=all", f"/hosts/{IP[1]}", "/scans",
    "/scans/scan-3", "/diff?a=scan-1&b=scan-3", "/cves", "/cves/CVE-2021-26855",
    "/search?q=Gemeente", "/search", "/notifications", "/api",
]  # fmt: skip


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_with_security_headers(site: Running, path: str) -> None:
    page = site.get(path)
    assert page.status == 200, page.text[:500]
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text  # the only script is /static/app.js
    assert page.text.count("<script") == 1


@pytest.mark.parametrize("path", [p for p in PAGES if p not in ("/api",)])
def test_every_page_has_its_json_twin(site: Running, path: str) -> None:
    api = "/api/overview" if path == "/" else "/api" + path
    answer = site.get(api)
    assert answer.status == 200, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/json")
    answer.json()


def test_drill_down_counts_add_up(site: Running) -> None:
    overview = site.get("/api/overview?scan=scan-3").json()
    countries = site.get("/api/countries?scan=scan-3&per_page=1000").json()
    assert sum(r["hosts"] for r in countries["rows"]) == overview["totals"]["hosts"]
    be = next(r for r in countries["rows"] if r["country"] == "BE")
    sectors = site.get("/api/countries/BE?scan=scan-3&by=sector").json()
    asns = site.get("/api/countries/BE?scan=scan-3&by=asn").json()
    for level in (sectors, asns):
        assert sum(r["vulnerable"] for r in level["rows"]) == be["vulnerable"]
        assert sum(r["hosts"] for r in level["rows"]) == be["hosts"]
    orgs = site.get("/api/countries/BE/sector/municipality?scan=scan-3").json()
    names = {r["organisation"] for r in orgs["rows"]}
    assert "Gemeente Voorbeeld" in names
    hosts = site.get(
        "/api/hosts?scan=scan-3&country=BE&sector=municipality&organisation="
        + quote("Gemeente Voorbeeld")
    ).json()
    gemeente = next(r for r in orgs["rows"] if r["organisation"] == "Gemeente Voorbeeld")
    assert hosts["total"] == gemeente["exchange"]
    assert {r["ip"] for r in hosts["rows"]} == {IP[1], IP[2]}
    # KEV: CVE-2021-26855 (ProxyLogon) is in CISA's catalog.
    assert be["kev"] == be["vulnerable"] > 0


def test_pagination_walks_the_full_result_set(site: Running) -> None:
    whole = site.get("/api/hosts?scan=scan-3&show=all&per_page=1000&sort=ip&dir=asc").json()
    assert whole["total"] == len(whole["rows"]) > 3
    walked = []
    for page in range(1, whole["total"] + 1):
        one = site.get(f"/api/hosts?scan=scan-3&show=all&per_page=1&page={page}&sort=ip&dir=asc")
        data = one.json()
        assert data["total"] == whole["total"]
        assert data["pages"] == whole["total"]
        walked += [r["ip"] for r in data["rows"]]
    assert walked == [r["ip"] for r in whole["rows"]]
    past = site.get(f"/api/hosts?scan=scan-3&show=all&per_page=1&page={whole['total'] + 1}")
    assert past.json()["rows"] == []


def test_sort_and_filter_are_done_over_everything(site: Running) -> None:
    up = site.get("/api/countries?scan=scan-3&sort=hosts&dir=asc").json()["rows"]
    down = site.get("/api/countries?scan=scan-3&sort=hosts&dir=desc").json()["rows"]
    assert [r["hosts"] for r in up] == sorted(r["hosts"] for r in up)
    assert [r["hosts"] for r in down] == sorted((r["hosts"] for r in down), reverse=True)
    named = site.get("/api/countries?scan=scan-3&q=nether").json()
    assert [r["country"] for r in named["rows"]] == ["NL"]
    assert named["filters"] == {"q": "nether"}
    vulnerable = site.get("/api/hosts?scan=scan-3&show=vulnerable&per_page=1000").json()
    assert vulnerable["rows"]
    assert all(r["vulnerable"] for r in vulnerable["rows"])
    network = site.get("/api/hosts?scan=scan-3&show=all&cidr=145.97.0.0/16").json()
    assert {r["ip"] for r in network["rows"]} == {IP[6], IP[7]}


def test_csv_download_is_exactly_the_rows_shown(site: Running) -> None:
    query = "scan=scan-3&show=all&per_page=3&page=2&sort=ip&dir=asc"
    shown = site.get(f"/api/hosts?{query}").json()
    download = site.get(f"/hosts?{query}&format=csv")
    assert download.status == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [r["ip"] for r in rows] == [r["ip"] for r in shown["rows"]]
    assert len(rows) == 3
    same = site.get(f"/api/hosts?{query}&format=csv")
    assert same.text == download.text


def test_csv_neutralises_formulas_from_servers(site: Running) -> None:
    # The hostile host's organisation starts with "<img", its host name with "javascript:";
    # a server string starting like a formula gets a leading quote.
    rows = list(csv.DictReader(io.StringIO(
        site.get("/hosts?scan=scan-3&show=all&per_page=1000&format=csv").text
    )))  # fmt: skip
    hostile = next(r for r in rows if r["ip"] == HOSTILE_IP)
    assert hostile["organisation"] == HOSTILE["img"]
    assert hostile["hostname"] == HOSTILE["url"]
    assert hostile["cert_cn"] == "'" + HOSTILE["formula"]
    assert not any(value.startswith(("=", "+", "-", "@")) for r in rows for value in r.values())


def test_host_page_shows_every_scan_with_basis_and_sources(site: Running) -> None:
    detail = site.get(f"/api/hosts/{IP[1]}").json()
    assert [s["scan_id"] for s in detail["sightings"]] == ["scan-3", "scan-2", "scan-1"]
    first = detail["sightings"][0]
    assert first["enrichment"]["organisation"] == "Gemeente Voorbeeld"
    proxylogon = next(v for v in first["verdicts"] if v["cve"] == "CVE-2021-26855")
    assert proxylogon["verdict"] == "vulnerable"
    assert proxylogon["kev"] is True
    assert proxylogon["sources"]
    page = site.get(f"/hosts/{IP[1]}").text
    assert "CVE-2021-26855" in page
    assert "Gemeente Voorbeeld" in page


def test_hostile_strings_are_escaped_everywhere(site: Running) -> None:
    for path in (f"/hosts/{HOSTILE_IP}", "/hosts?scan=scan-3&show=all&per_page=1000",
                 "/countries/BE/sector/municipality?scan=scan-3", "/search?q=193.190"):  # fmt: skip
        text = site.get(path).text
        assert "<script>window" not in text
        assert "<img src=x" not in text
        assert "<svg onload" not in text
        assert 'href="javascript:' not in text
    host = site.get(f"/hosts/{HOSTILE_IP}").text
    assert "&lt;script&gt;window.__pwned=&#39;script&#39;&lt;/script&gt;" in host
    assert "\u202e" not in host  # a direction override is shown as \u202e, not obeyed
    assert "mail.\\u202eexe.evil\\u202c.example" in host


def test_scans_progress_and_diff(site: Running) -> None:
    scans = site.get("/api/scans").json()
    assert {r["scan_id"] for r in scans["rows"]} == {"scan-1", "scan-2", "scan-3"}
    progress = site.get("/api/scans/scan-2").json()
    assert progress["status"] == "ingested"
    assert progress["shards"] == "1/1"
    assert progress["targets_done"] == 8
    diff = site.get("/api/diff?a=scan-1&b=scan-3&by=total").json()
    (total,) = diff["groups"]
    assert total["vulnerable_a"] == 6
    assert diff["hosts"]["total"] == len(diff["hosts"]["rows"]) > 0
    changes = {(r["ip"], r["before"], r["after"]) for r in diff["hosts"]["rows"]}
    assert (IP[2], "vulnerable", "patched") in changes


def test_cve_page_and_search(site: Running) -> None:
    cve = site.get("/api/cves/CVE-2021-26855?scan=scan-3").json()
    assert cve["kev"] is True
    assert cve["hosts"]["vulnerable"] > 0
    fixed = {f["build"] for p in cve["products"] for f in p["fixed_in"]}
    assert "15.1.2176.12" in fixed or any(b.startswith("15.") for b in fixed)
    assert site.get("/api/cves/CVE-1999-0001").status == 404
    assert site.get(f"/api/search?q={IP[5]}").json()["goto"] == f"/hosts/{IP[5]}"
    page = site.get(f"/search?q={IP[5]}")
    assert f"Host {IP[5]}" in page.text  # followed the redirect to the host page
    found = site.get("/api/search?q=ziekenhuis&scan=scan-3").json()
    assert [o["organisation"] for o in found["organisations"]] == ["Ziekenhuis Voorbeeld"]
    build = site.get("/api/search?q=15.1.2507.6").json()
    assert build["goto"].startswith("/hosts?")


def test_bad_input_is_a_clear_error_never_a_traceback(site: Running) -> None:
    for path in ("/api/hosts?page=0", "/api/hosts?per_page=5000", "/api/hosts?sort=nope",
                 "/api/hosts?cidr=300.1.1.0/8", "/api/countries/Belgium",
                 "/api/hosts?page=abc"):  # fmt: skip
        answer = site.get(path)
        assert answer.status == 400, path
        assert set(answer.json()) == {"error"}
        assert "Traceback" not in answer.text
    assert site.get("/api/hosts/192.0.2.99").status == 404
    assert site.get("/api/hosts/not-an-ip").status == 404
    assert site.get("/api/overview?scan=nope").status == 404
    assert site.get("/nowhere").status == 404
    # Digits int() refuses (superscripts) or reads (Arabic-Indic) are no AS number either.
    for asn in ("%C2%B3%C2%B9", "AS%D9%A1%D9%A2", "ASabc"):
        answer = site.get(f"/api/countries/~none/asn/{asn}")
        assert answer.status == 404, asn
        assert set(answer.json()) == {"error"}
    html = site.get("/hosts?page=0")
    assert html.status == 400
    assert "page starts at 1" in html.text


def test_read_only_and_host_checked(site: Running) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = site.get("/api/hosts", method=method)
        assert answer.status == 405
        assert answer.headers["allow"] == "GET, HEAD"


def test_static_assets_are_shipped(site: Running) -> None:
    script = site.get("/static/app.js")
    assert script.status == 200
    assert "textContent" in script.text
    assert site.get("/static/app.css").status == 200
    doc = site.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/hosts" in doc["paths"]
