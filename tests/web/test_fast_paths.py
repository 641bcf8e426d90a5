"""The pages' fast paths (indexes, the name table, cut-then-join pages, remembered totals)
answer exactly what a plain reading of the store answers, on both backends, and stay right
after more results are ingested and after a re-enrichment renames organisations."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exwatch.cli import main
from exwatch.store import Store, open_store
from exwatch.web import names, search_view
from exwatch.web.app import warm
from exwatch.web.hosts_view import host_listing
from exwatch.web.search_view import text_matches
from tests.report.records import record, write_jsonl
from tests.store.backends import BACKENDS, new_target, pg_database  # noqa: F401  (fixture)

SCAN = "names-1"
CVE = "CVE-2021-26855"
BUILDS = ("15.1.2507.6", "15.2.1544.4", "15.1.2507.39", None)
# Names that differ only in case, carry LIKE wildcards, or are shared by two columns.
SEARCHES = ("mail1", "MAIL1", "mail_1", "mail%", "cn-2", "mbx", "m", "shared", "zz-none",
            "voorbeeld", "gemeente", "stad", "late")  # fmt: skip


def _host(i: int, when: str) -> dict[str, Any]:
    ip = f"193.190.{i // 200}.{i % 200 + 1}" if i % 3 else f"145.100.{i // 200}.{i % 200 + 1}"
    rec = record(SCAN, ip, when, vulnerable=(CVE,) if i % 4 == 0 else (), exchange=i % 5 != 4)
    rec["hostname"] = "Shared.example" if i % 11 == 0 else f"Mail{i}.example" if i % 2 else None
    if rec["exchange"] is not None:
        build = BUILDS[i % len(BUILDS)]
        rec["exchange"]["build"] = build
        rec["tls"] = {"subject_cn": "shared.example" if i % 11 == 0 else f"cn-{i}.example"}
        rec["ntlm"] = {"dns_computer": f"MBX{i % 7}.corp", "netbios_computer": f"MBX{i % 7}"}
        if i == 5:
            rec["hostname"] = "mail_1%.example"  # the wildcards are literal
    return rec


def _constituency(folder: Path, municipality: str) -> Path:
    path = folder / f"constituency-{municipality.split()[0]}.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["match", "organisation", "sector", "country"])
    writer.writerow(["193.190.0.0/17", municipality, "municipality", "BE"])
    writer.writerow(["193.190.128.0/17", "Provincie Voorbeeld", "municipality", "BE"])
    writer.writerow(["145.100.0.0/16", "Ziekenhuis Voorbeeld", "health", "NL"])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


@pytest.fixture(params=BACKENDS)
def db(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    target = new_target(request.param, tmp_path, request, "fast")
    paths = write_jsonl(tmp_path, {SCAN: [_host(i, "2026-03-20") for i in range(1, 240)]})
    assert main(["ingest", "--db", target, *map(str, paths)]) == 0
    constituency = _constituency(tmp_path, "Gemeente Voorbeeld")
    assert main(["enrich", "--db", target, "--constituency", str(constituency)]) == 0
    warm(target, lambda _: None)  # indexes, drill-down counts, name table: as `serve` does
    return target


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    with open_store(db) as s:
        yield s


# -- what a plain reading of the store answers ---------------------------------------------


def _plain_names(store: Store, text: str) -> list[tuple[Any, ...]]:
    prefix = text.strip().lower()
    rows = store.query(
        "SELECT ip, port, hostname, tls_subject_cn, ntlm_dns_computer, build, status"
        " FROM results WHERE scan_id = ?",
        [SCAN],
    )
    hits = [
        r for r in rows if any(v is not None and str(v).lower().startswith(prefix) for v in r[2:5])
    ]
    return sorted(hits, key=lambda r: (r[0], r[1]))[: search_view.LIMIT]


def _plain_organisations(store: Store, text: str) -> list[tuple[Any, ...]]:
    rows = store.query(
        "SELECT country, organisation, label, hosts, exchange, vulnerable FROM web_groups"
        " WHERE scan_id = ? AND level = 'sector_org'",
        [SCAN],
    )
    hits = [r for r in rows if r[1] is not None and text.strip().lower() in str(r[1]).lower()]
    return sorted(
        ((r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5])) for r in hits),
        key=lambda r: (-r[5], r[1], r[0], r[2]),
    )[: search_view.LIMIT]


def _shown_names(store: Store, text: str) -> list[tuple[Any, ...]]:
    found = text_matches(store, SCAN, text)["hosts"]
    return [
        (h["ip"], h["port"], h["hostname"], h["cert_cn"], h["ntlm_computer"], h["build"],
         h["status"])
        for h in found
    ]  # fmt: skip


def _shown_organisations(store: Store, text: str) -> list[tuple[Any, ...]]:
    found = text_matches(store, SCAN, text)["organisations"]
    rows = [
        (o["country"], o["organisation"], o["sector"], o["hosts"], o["exchange"], o["vulnerable"])
        for o in found
    ]
    return sorted(rows, key=lambda r: (-r[5], r[1], r[0], r[2]))


def _enrichment(store: Store) -> list[dict[str, Any]]:
    return store.dicts(
        "SELECT ip, port, ip_sort, country, organisation, build, is_exchange, vulnerable,"
        " vulnerable_cves FROM enrichment WHERE scan_id = ?",
        [SCAN],
    )


def _plain_hosts(store: Store, query: dict[str, str]) -> tuple[int, list[tuple[str, int]]]:
    rows = [r for r in _enrichment(store) if r["is_exchange"]]
    if "country" in query:
        rows = [r for r in rows if r["country"] == query["country"]]
    if "build" in query:
        rows = [r for r in rows if r["build"] == query["build"]]
    if "organisation" in query:
        rows = [r for r in rows if r["organisation"] == query["organisation"]]
    if "cve" in query:
        rows = [r for r in rows if r["vulnerable"] and query["cve"] in (r["vulnerable_cves"] or [])]
    rows.sort(key=lambda r: (r["ip_sort"], r["port"]))
    if query.get("sort") == "build":
        present = [r for r in rows if r["build"] is not None]
        present.sort(key=lambda r: r["build"], reverse=query.get("dir") == "desc")
        rows = present + [r for r in rows if r["build"] is None]
    page, per_page = int(query.get("page", "1")), int(query.get("per_page", "50"))
    shown = rows[(page - 1) * per_page : page * per_page]
    return len(rows), [(r["ip"], int(r["port"])) for r in shown]


HOST_QUERIES = [
    {"country": "BE"},
    {"country": "BE", "per_page": "7", "page": "3"},
    {"country": "BE", "sort": "build", "dir": "desc", "per_page": "9", "page": "2"},
    {"country": "BE", "sort": "build", "dir": "asc", "per_page": "9", "page": "4"},
    {"sort": "build", "dir": "desc", "per_page": "11", "page": "3"},
    {"cve": CVE, "show": "vulnerable", "per_page": "5", "page": "2"},
    {"build": "15.2.1544.4", "per_page": "6", "page": "2"},
    {"country": "NL", "organisation": "Ziekenhuis Voorbeeld", "per_page": "4", "page": "2"},
]


def _shown_hosts(store: Store, query: dict[str, str]) -> tuple[int, list[tuple[str, int]]]:
    listing = host_listing(store, SCAN, query)
    return listing.total, [(r["ip"], int(r["port"])) for r in listing.rows]


def _check_everything(store: Store) -> None:
    for text in SEARCHES:
        assert _shown_names(store, text) == _plain_names(store, text), text
        assert _shown_organisations(store, text) == _plain_organisations(store, text), text
    for query in HOST_QUERIES:
        assert _shown_hosts(store, query) == _plain_hosts(store, query), query


# -- the tests --------------------------------------------------------------------------------


def test_fast_paths_answer_what_a_plain_reading_answers(store: Store) -> None:
    assert _plain_names(store, "mail1")  # the searches find something to compare
    assert len(_plain_names(store, "m")) == search_view.LIMIT
    assert _plain_names(store, "mail_1") == _shown_names(store, "mail_1") != []
    assert _plain_organisations(store, "voorbeeld")
    assert _shown_hosts(store, HOST_QUERIES[2])[1]
    _check_everything(store)
    if store.dialect.name == "duckdb":
        assert store.scalar("SELECT count(*) FROM web_names WHERE scan_id = ?", [SCAN])
    else:  # pg_trgm ships in Debian's PostgreSQL and is trusted: every store gets the index
        assert store.scalar(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
            " AND indexname = 'web_groups_organisation_trgm'"
        )


def test_common_and_rare_prefixes_take_either_path_alike(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = {text: _plain_names(store, text) for text in SEARCHES}
    # Every prefix counted as common: the page reads the results in address order.
    monkeypatch.setattr(names, "GATHER", 0)
    monkeypatch.setattr(search_view, "GATHER", 0)
    for text in SEARCHES:
        assert _shown_names(store, text) == expected[text], text


def test_more_results_ingested_are_found(db: str, store: Store, tmp_path: Path) -> None:
    _check_everything(store)  # the name table, counts and totals are in place and in memory
    before = _shown_hosts(store, {"country": "BE", "per_page": "5", "page": "2"})[0]
    late = [_host(i, "2026-03-21") for i in range(240, 260)]
    for rec in late:
        rec["hostname"] = f"late-{rec['ip']}.example"
    more = tmp_path / "more"
    more.mkdir()
    assert main(["ingest", "--db", db, *map(str, write_jsonl(more, {SCAN: late}))]) == 0
    constituency = _constituency(tmp_path, "Gemeente Voorbeeld")
    assert main(["enrich", "--db", db, "--constituency", str(constituency)]) == 0
    with open_store(db) as fresh:
        found = _shown_names(fresh, "late-")
        assert len(found) == 20
        assert _shown_hosts(fresh, {"country": "BE", "per_page": "5", "page": "2"})[0] > before
        _check_everything(fresh)


def test_a_re_enrichment_renames_organisations_in_search(db: str, tmp_path: Path) -> None:
    with open_store(db) as store:
        assert _shown_organisations(store, "gemeente")
        assert _shown_hosts(store, {"organisation": "Gemeente Voorbeeld", "country": "BE"})[0]
    renamed = _constituency(tmp_path, "Stad Voorbeeld")
    assert main(["enrich", "--db", db, "--constituency", str(renamed), "--refresh"]) == 0
    with open_store(db) as store:
        assert _shown_organisations(store, "gemeente") == []
        stad = _shown_organisations(store, "stad")
        assert [o[1] for o in stad] == ["Stad Voorbeeld"]
        assert stad[0][3] == _plain_organisations(store, "stad")[0][3] > 0
        _check_everything(store)


def test_name_ranges_cover_every_prefix() -> None:
    assert names.after("mail") == "maim"
    assert names.after("") is None
    assert names.after("a\U0010ffff") == "b"
    for prefix in ("mail", "x9", "é"):
        upper = names.after(prefix)
        assert upper is not None
        for name in (prefix, prefix + "\U0010ffff", prefix + "zzz"):
            assert prefix <= name < upper
