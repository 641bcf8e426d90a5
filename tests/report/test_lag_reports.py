"""Patch lag, KEV and CVE views on a real store (DuckDB, then PostgreSQL), through the CLI in
every format, in a pipe and on a pseudo-terminal.

Three scans of a handful of hosts whose records are written as the scanner writes them (the
verdicts and patch lag `assess` gives on the scan's day).  Expected lags are worked out by
hand from builds.csv (line numbers in the comments); `exwatch.exposure` (the records' own
view) cross-checks the exact ones and the KEV hosts.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from exwatch.assess import assess
from exwatch.cli import main
from exwatch.exposure import kev_hits, months_behind
from exwatch.report import aggregate, rollup
from exwatch.store import open_store
from tests.report.records import CONSTITUENCY, write_jsonl
from tests.store.backends import BACKENDS, new_target, pg_database  # noqa: F401  (fixture)

EXWATCH = [sys.executable, "-m", "exwatch"]
FORMULA = '=HYPERLINK("http://x.example/","click")'

DEC, SPRING, EARLY = "dec", "spring", "early"
DAYS = {DEC: "2026-12-01", SPRING: "2026-03-01", EARLY: "2025-03-01"}

# (scan, ip, build or None for a hidden build, False for a host that is not Exchange,
#  least months behind, least updates behind its CU, exact)
HOSTS: list[tuple[str, str, Any, int | None, int | None, bool | None]] = [
    # SE RTM Sep26SUv2 (l.362) is the newest SE update on 2026-12-01.
    (DEC, "193.190.253.144", "15.2.2562.53", 0, 0, True),
    # SE RTM Feb26SU, 2026-02-10 (l.356): Sep26SUv2 2026-10-02 is 234 days = 7 months
    # later; May26HU..Sep26SUv2 (l.357-362) are 6 updates.
    (DEC, "193.190.1.10", "15.2.2562.37", 7, 6, True),
    # 2019 CU14 seen at CU level: its newest update Sep26SUv2 (l.337) is also the line's
    # newest day, so at least 0 months and 0 updates behind.
    (DEC, "193.191.1.1", "15.2.1544", 0, 0, False),
    (DEC, "193.191.1.5", None, None, None, None),  # Exchange, build hidden
    (DEC, "193.191.1.2", False, None, None, None),  # answers, not Exchange
    # 2019 CU12 release 2022-04-20 (l.298): 1626 days = 53 months before 2026-10-02 (l.350);
    # May22SU..Nov23SU (l.299-310) are 12 updates.
    (DEC, "145.100.1.1", "15.2.1118.7", 53, 12, True),
    # 2010 SP3 RU32 (l.35) is the last 2010 update: 0 behind its line.
    (DEC, "145.97.1.1", "14.3.513.0", 0, 0, True),
    # 2016 CU23 release 2022-04-20 (l.203): 53 months; 28 updates after it (l.204-231).
    (DEC, "145.100.1.9", "15.1.2507.6", 53, 28, True),
    # The same SE build on 2026-03-01, when Feb26SU was the newest SE update.
    (SPRING, "193.190.1.10", "15.2.2562.37", 0, 0, True),
    # 2019 on 2025-03-01 (supported until 2025-10-14): CU14 Nov24SUv2 2024-11-27 (l.325),
    # the newest 2019 release is CU15's, 2025-02-10 (l.338): 75 days = 2 months, one CU behind.
    (EARLY, "193.190.253.144", "15.2.1544.14", 2, 0, True),
    (EARLY, "193.190.1.10", "15.2.1748.10", 0, 0, True),
]


def scan_record(scan: str, ip: str, build: Any, hostname: str | None = None) -> dict[str, Any]:
    """A record as the scanner writes it for this build on the scan's day."""
    day = date.fromisoformat(DAYS[scan])
    exchange: dict[str, Any] | None = None
    cves: dict[str, str] = {}
    if build is not False:
        exchange = {
            "build": build,
            "precision": None,
            "product": None,
            "cu": None,
            "su": None,
            "eol": None,
            "known": False,
            "sources": ["x-owa-version"],
            "builds_seen": [] if build is None else [build],
            "patch_lag": None,
            "basis": {},
        }
        if build is not None:
            a = assess(build, today=day).to_json()
            cves = dict(a["cves"])
            exchange.update(
                precision="su" if build.count(".") == 3 else "cu",
                product=a["product"],
                cu=a["cu"],
                su=a["su"],
                eol=a["eol"],
                known=a["known"],
                patch_lag=a["patch_lag"],
                basis={c: a["basis"][c] for c, v in cves.items() if v == "vulnerable"},
            )
    return {
        "schema_version": 1,
        "scan_id": scan,
        "ip": ip,
        "port": 443,
        "hostname": hostname,
        "timestamp": f"{DAYS[scan]}T08:00:00Z",
        "duration_ms": 40.0,
        "status": "success",
        "error": None,
        "exchange": exchange,
        "cves": cves,
        "tls": None,
        "ntlm": None,
        "headers": {"server": "Microsoft-IIS/10.0"},
        "http_status": 200,
    }


def all_records() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {EARLY: [], SPRING: [], DEC: []}
    for scan, ip, build, *_ in HOSTS:
        # A formula in a server-given name: CSV must neutralise it, HTML escape it.
        name = FORMULA if (scan, ip) == (DEC, "193.190.1.10") else None
        out[scan].append(scan_record(scan, ip, build, name))
    return out


@pytest.fixture(scope="module", params=BACKENDS)
def lagstore(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    folder = tmp_path_factory.mktemp("lag")
    db = new_target(request.param, folder, request, "lag")
    (folder / "c.csv").write_text(CONSTITUENCY, encoding="utf-8")
    assert main(["ingest", "--db", db, *map(str, write_jsonl(folder, all_records()))]) == 0
    assert main(["enrich", "--db", db, "--constituency", str(folder / "c.csv")]) == 0
    return db


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["report", *args, "--format", "json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_expected_lags_agree_with_the_records_own_patch_lag() -> None:
    # The hand-worked months of exact builds are what each record's patch_lag says when the
    # build table knows nothing newer than the scan's day (December 2026: it does not).
    for scan, ip, build, months, _, exact in HOSTS:
        if scan == DEC and exact:
            assert months_behind(scan_record(scan, ip, build)) == months, build


def test_per_country_kev_and_patch_lag(lagstore: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {r["key"]: r for r in _json(capsys, "--db", lagstore, "--scan", DEC)}
    be, nl = rows["BE"], rows["NL"]
    # BE: SE current, SE 7 months behind (KEV CVE-2026-42897), 2019 CU-level, one hidden.
    assert (be["exchange"], be["kev"], be["lag_hosts"], be["lag_exact"], be["lag_unknown"]) == (
        4, 1, 3, 2, 1,
    )  # fmt: skip
    assert be["median_months_behind"] == 0.0
    assert (be["behind_sus"], be["behind_sus_pct"]) == (1, 33.3)
    assert (be["behind_months"], be["behind_months_pct"]) == (1, 33.3)
    assert (be["cu_no_sus"], be["supported"], be["behind_cu"], be["behind_cu_pct"]) == (
        1,
        2,
        0,
        0.0,
    )
    assert (be["months_0"], be["months_7_12"], be["months_unknown"]) == (2, 1, 1)
    # NL: 2019 CU12 and 2016 CU23 53 months behind (both KEV), 2010's last update.
    assert (nl["exchange"], nl["kev"], nl["median_months_behind"]) == (3, 2, 53.0)
    assert (nl["behind_sus"], nl["behind_months"], nl["cu_no_sus"]) == (2, 2, 3)
    assert (nl["supported"], nl["behind_cu_pct"]) == (0, None)  # no supported line: no share
    assert (nl["months_0"], nl["months_over_36"]) == (1, 2)
    assert nl["behind_sus_min"] == 1
    assert nl["behind_months_min"] == 6
    # The KEV counts are the records' own KEV hits.
    records = all_records()[DEC]
    assert be["kev"] + nl["kev"] == sum(1 for r in records if kev_hits(r))


def test_thresholds_and_other_groups(lagstore: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--db", lagstore, "--scan", DEC, "--behind-sus", "10", "--behind-months", "24"]
    rows = {r["key"]: r for r in _json(capsys, *args)}
    assert (rows["BE"]["behind_sus"], rows["BE"]["behind_months"]) == (0, 0)
    assert (rows["NL"]["behind_sus"], rows["NL"]["behind_months"]) == (2, 2)
    assert rows["NL"]["behind_sus_min"] == 10
    sectors = {
        r["key"]: r for r in _json(capsys, "--db", lagstore, "--scan", DEC, "--by", "sector")
    }
    assert (sectors["health"]["exchange"], sectors["health"]["median_months_behind"]) == (2, 53.0)
    assert sectors["municipality"]["kev"] == 1
    versions = {
        r["key"]: r for r in _json(capsys, "--db", lagstore, "--scan", DEC, "--by", "version")
    }
    assert versions["15.2.2562.37"]["median_months_behind"] == 7.0
    assert versions["15.2.1544"]["lag_exact"] == 0
    assert versions[None]["lag_unknown"] == 1  # the hidden build
    top = _json(capsys, "--db", lagstore, "--scan", DEC, "--by", "sector", "--limit", "1")
    assert [r["key"] for r in top] == ["health"]
    assert top[0]["kev"] == 2


def test_lag_is_measured_as_of_the_scan_day(
    lagstore: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spring = _json(capsys, "--db", lagstore, "--scan", SPRING, "--by", "version")
    assert [(r["key"], r["median_months_behind"], r["behind_sus"]) for r in spring] == [
        ("15.2.2562.37", 0.0, 0)
    ]
    early = {r["key"]: r for r in _json(capsys, "--db", lagstore, "--scan", EARLY)}["BE"]
    assert (early["supported"], early["behind_cu"], early["behind_cu_pct"]) == (2, 1, 50.0)
    assert early["median_months_behind"] == 1.0  # 2 and 0 months
    trend = {t["scan_id"]: t for t in _json(capsys, "--db", lagstore, "--by", "scan")}
    records = all_records()
    for scan in (EARLY, SPRING, DEC):
        assert trend[scan]["kev"] == sum(1 for r in records[scan] if kev_hits(r)), scan
    assert trend[DEC]["kev"] == 3
    assert trend[DEC]["median_months_behind"] == 3.5  # 0, 0, 0, 7, 53, 53
    hosts = {h["ip"]: h for h in _json(capsys, "--db", lagstore, "--by", "host")}
    assert hosts["193.190.1.10"]["months_behind"] == 7  # its last sighting, December


def test_months_distribution(lagstore: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys, "--db", lagstore, "--scan", DEC, "--by", "months")
    got = {r["key"]: (r["exchange"], r["exact"], r["vulnerable"], r["kev"]) for r in rows}
    assert list(got) == ["0", "1-3", "4-6", "7-12", "13-24", "25-36", ">36", "unknown"]
    assert got["0"] == (3, 2, 0, 0)
    assert got["7-12"] == (1, 1, 1, 1)
    assert got[">36"] == (2, 2, 2, 2)
    assert got["unknown"] == (1, 0, 0, 0)
    assert sum(r["exchange"] for r in rows) == 7
    assert next(r for r in rows if r["key"] == ">36")["exchange_pct"] == 28.6
    be = _json(capsys, "--db", lagstore, "--scan", DEC, "--by", "months", "--country", "be")
    assert sum(r["exchange"] for r in be) == 4


def test_kev_only_hosts(lagstore: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys, "--db", lagstore, "--scan", DEC, "--by", "kev")
    records = {r["ip"]: r for r in all_records()[DEC]}
    want = {ip: kev_hits(r) for ip, r in records.items() if kev_hits(r)}
    assert {r["ip"]: r["kev_cves"] for r in rows} == want
    assert [r["country"] for r in rows] == ["BE", "NL", "NL"]  # by country, organisation, ip
    se = next(r for r in rows if r["ip"] == "193.190.1.10")
    assert (se["months_behind"], se["sus_behind"], se["lag_exact"]) == (7, 6, True)
    assert se["hostname"] == FORMULA  # JSON keeps what the server sent
    assert se["organisation"] == "Gemeente Voorbeeld"
    nl = _json(capsys, "--db", lagstore, "--scan", DEC, "--by", "kev", "--country", "NL")
    assert {r["ip"] for r in nl} == {"145.100.1.1", "145.100.1.9"}
    early = _json(capsys, "--db", lagstore, "--scan", EARLY, "--by", "kev")
    assert {r["ip"] for r in early} == {r["ip"] for r in all_records()[EARLY] if kev_hits(r)}


def test_by_cve_with_kev_marks_and_fixed_builds(
    lagstore: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = {r["key"]: r for r in _json(capsys, "--db", lagstore, "--scan", DEC, "--by", "cve")}
    records = all_records()[DEC]
    for cve in ("CVE-2026-42897", "CVE-2021-26855", "CVE-2022-41082"):
        verdicts = [r["cves"].get(cve) for r in records]
        got = rows[cve]
        assert got["vulnerable"] == verdicts.count("vulnerable"), cve
        assert got["patched"] == verdicts.count("patched"), cve
        assert got["undetermined"] == verdicts.count("undetermined"), cve
        assert got["not_affected"] == verdicts.count("not-affected"), cve
    proxylogon = rows["CVE-2021-26855"]
    assert (proxylogon["kev"], proxylogon["kev_added"], proxylogon["name"]) == (
        True, "2021-11-03", "ProxyLogon",
    )  # fmt: skip
    assert proxylogon["fixed_by"] == "Mar21SU"
    assert "2016 CU19 15.1.2176.9" in proxylogon["fixed_builds"]  # builds.csv l.190
    assert "2019 CU9" in proxylogon["shipped_with_fix"]
    assert (proxylogon["cvss"], proxylogon["severity"], proxylogon["pre_auth"]) == (
        9.1, "critical", True,
    )  # fmt: skip
    kev = _json(capsys, "--db", lagstore, "--scan", DEC, "--by", "cve", "--kev")
    assert kev
    assert all(r["kev"] for r in kev)
    assert {r["key"] for r in kev} == {k for k, r in rows.items() if r["kev"]}
    assert len(rows) > len(kev)


def test_usage_errors(lagstore: str) -> None:
    assert main(["report", "--db", lagstore, "--kev"]) == 2
    assert main(["report", "--db", lagstore, "--by", "kev", "--kev"]) == 2
    assert main(["report", "--db", lagstore, "--behind-months", "0"]) == 2


def test_csv_neutralises_and_keeps_every_field(
    lagstore: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["report", "--db", lagstore, "--scan", DEC, "--by", "kev", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    se = next(r for r in rows if r["ip"] == "193.190.1.10")
    assert se["hostname"] == "'" + FORMULA
    assert se["kev_cves"] == "CVE-2026-42897"
    assert se["months_behind"] == "7"
    assert main(["report", "--db", lagstore, "--scan", DEC, "--format", "csv"]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0]
    # The columns reports had before keep their places; the new ones follow.
    assert header.startswith(
        "key,name,hosts,exchange,vulnerable,vulnerable_pct,eol,eol_pct,kev,median_months_behind"
    )
    assert "months_over_36" in header
    be = next(r for r in csv.DictReader(io.StringIO(text)) if r["key"] == "BE")
    assert (be["kev"], be["behind_cu_pct"], be["months_unknown"]) == ("1", "0.0", "1")


def _piped(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    p = subprocess.run(
        [*EXWATCH, "report", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def _on_terminal(*args: str, columns: int = 200) -> str:
    main_fd, sub = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm-256color"}
    proc = subprocess.Popen([*EXWATCH, "report", *args], stdout=sub, stderr=sub, env=env)
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main_fd)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_tables_in_a_pipe_and_on_a_terminal(lagstore: str) -> None:
    piped = _piped("--db", lagstore, "--scan", DEC, "--by", "months")
    assert "\x1b[" not in piped
    lines = {line.split()[0]: line.split() for line in piped.splitlines() if line.strip()}
    assert lines[">36"][1] == "2"
    assert "As of the scan's day 2026-12-01" in " ".join(piped.split())
    kev = _piped("--db", lagstore, "--scan", DEC, "--by", "kev")
    assert "CVE-2026-42897" in kev
    assert "193.190.1.10" in kev
    wide = _on_terminal("--db", lagstore, "--scan", DEC, "--behind-months", "12")
    for head in ("KEV", "median mo", "% ≥1 SU", "% ≥12 mo", "% no SUs", "% old CU"):
        assert head in wide, head
    be = next(line for line in wide.splitlines() if line.strip().startswith("BE"))
    # hosts, Exchange, vulnerable, EOL, KEV, median; then of 3 placed hosts: >= 1 update
    # behind (the SE one), >= 12 months (none), CU without updates (2019); 0 % of the 2 SE
    # hosts behind the newest CU.
    assert be.split() == [
        "BE", "Belgium", "5", "4", "1", "25.0", "1", "25.0", "1", "0.0", "33.3", "0.0", "33.3",
        "0.0",
    ]  # fmt: skip
    assert "Patch lag as of the scan's day 2026-12-01" in " ".join(wide.split())
    # At 80 columns the least useful columns go; what a reader needs first stays.
    narrow = _on_terminal("--db", lagstore, "--scan", DEC, "--by", "kev", columns=80)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", narrow)
    assert max(len(line) for line in plain.splitlines()) <= 80
    for text in ("193.190.1.10", "CVE-2026-42897", "mo behind"):
        assert text in plain, text


def test_rollup_builds_counted_while_enriching_equal_a_full_build(lagstore: str) -> None:
    with open_store(lagstore) as store:
        cells = {
            (s, dim): rollup.build_cells(store, s, dim)
            for s in (EARLY, SPRING, DEC)
            for dim in (*rollup.BUILD_DIMS, "version")
        }
        assert store.scalar("SELECT count(*) FROM rollup_builds_state") == 3
        store.execute("DELETE FROM rollup_builds_state")  # stale: rebuilt in SQL
        again = {key: rollup.build_cells(store, *key) for key in cells}

    def plain(found: dict[Any, dict[Any, list[Any]]]) -> dict[Any, list[Any]]:
        return {
            k: sorted((str(g), sorted(map(str, c))) for g, c in v.items()) for k, v in found.items()
        }

    assert plain(again) == plain(cells)
    assert plain(cells)[(DEC, "country")][0][0] == "BE"


def test_kev_counts_follow_the_shipped_kev_list(lagstore: str) -> None:
    with open_store(lagstore) as store:
        # As if the store had been reported with an exwatch whose KEV list was empty.
        store.execute("UPDATE rollup_builds SET kev = 0 WHERE scan_id = ?", [DEC])
        store.execute("UPDATE rollup_builds_state SET kev = '' WHERE scan_id = ?", [DEC])
        assert aggregate.totals(store, DEC).kev == 3
        assert (
            store.scalar("SELECT kev FROM rollup_builds_state WHERE scan_id = ?", [DEC])
            == rollup.kev_signature()
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_made_before_rollup_builds_existed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db = new_target(backend, tmp_path, request, "old")
    assert main(["ingest", "--db", db, *map(str, write_jsonl(tmp_path, all_records()))]) == 0
    capsys.readouterr()
    assert main(["report", "--db", db, "--scan", DEC, "--format", "json"]) == 0
    before = json.loads(capsys.readouterr().out)
    with open_store(db) as store:
        store.execute("DROP TABLE rollup_builds")
        store.execute("DROP TABLE rollup_builds_state")
    if backend == "duckdb":
        # Read-only (as on read-only media): computed in memory, nothing created.
        with open_store(db, read_only=True) as store:
            got = [r.to_json() for r in aggregate.group_counts(store, DEC, "country")]
            assert not store.has_table("rollup_builds")
        assert [{k: v for k, v in r.items() if k in got[0]} for r in before] == got
    # Opened writable, the store gains the tables and reports as before.
    assert main(["report", "--db", db, "--scan", DEC, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == before
    with open_store(db) as store:
        assert store.has_table("rollup_builds")
