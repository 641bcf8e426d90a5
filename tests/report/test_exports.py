"""Exports: Shadowserver scan_exchange CSV (exact columns), JSON lines, Parquet, per group."""

from __future__ import annotations

import csv
import json

import duckdb

from exwatch.cli import main
from exwatch.report.exports import SHADOWSERVER_COLUMNS, slug
from tests.report.records import HOSTILE


def test_shadowserver_csv_columns_and_rows(hostile_store, tmp_path):
    db, _ = hostile_store
    out = tmp_path / "scan.csv"
    assert main(["export", "--db", str(db), "-o", str(out)]) == 0
    with out.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == SHADOWSERVER_COLUMNS
        rows = {r["ip"]: r for r in reader}
    # Vulnerable or end-of-life Exchange hosts of the latest scan.
    assert sorted(rows) == [
        "130.149.1.1",
        "145.100.1.1",
        "145.97.1.1",
        "193.190.253.144",
        "194.2.0.1",
    ]
    nl = rows["145.100.1.1"]
    assert nl["tag"] == "exchange;cve-2021-26855;cve-2021-34473"
    assert (nl["severity"], nl["geo"], nl["sector"], nl["version"]) == (
        "critical", "NL", "health", "15.1.2507.6",
    )  # fmt: skip
    assert (nl["timestamp"], nl["protocol"], nl["port"]) == ("2026-03-20 08:00:00", "tcp", "443")
    assert nl["url"] == "https://145.100.1.1:443/owa/"
    fr = rows["194.2.0.1"]
    assert (fr["tag"], fr["severity"]) == ("exchange", "high")  # end of life only
    be = rows["193.190.253.144"]
    # Server-given values pass through unchanged for machines (csv quoting keeps them whole).
    assert (be["hostname"], be["hostname_source"], be["servername"]) == (HOSTILE, "target", HOSTILE)


def test_all_exchange_and_per_country_files(hostile_store, tmp_path):
    db, _ = hostile_store
    out = tmp_path / "all.csv"
    assert main(["export", "--db", str(db), "--all-exchange", "-o", str(out)]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + 7
    folder = tmp_path / "per"
    assert main(["export", "--db", str(db), "--per", "country", "-o", str(folder)]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "2026-03-20-scan_exchange-be.csv", "2026-03-20-scan_exchange-de.csv",
        "2026-03-20-scan_exchange-fr.csv", "2026-03-20-scan_exchange-nl.csv",
    ]  # fmt: skip
    nl = (folder / "2026-03-20-scan_exchange-nl.csv").read_text(encoding="utf-8").splitlines()
    assert len(nl) == 3


def test_jsonl_and_parquet_per_organisation(hostile_store, tmp_path):
    db, _ = hostile_store
    out = tmp_path / "x.jsonl"
    assert (
        main(["export", "--db", str(db), "--format", "jsonl", "--scan", "scan-1", "-o", str(out)])
        == 0
    )
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 6
    assert {r["scan_id"] for r in records} == {"scan-1"}
    first = next(r for r in records if r["ip"] == "193.190.253.144")
    assert first["enrichment"]["organisation"] == "Gemeente Voorbeeld"
    assert first["enrichment"]["country"] == "BE"

    folder = tmp_path / "orgs"
    assert main(["export", "--db", str(db), "--format", "parquet", "--per", "organisation",
                 "-o", str(folder)]) == 0  # fmt: skip
    files = sorted(p.name for p in folder.iterdir())
    assert files == [
        "2026-03-20-scan_exchange-gemeente-voorbeeld.parquet",
        "2026-03-20-scan_exchange-universiteit-voorbeeld.parquet",
        "2026-03-20-scan_exchange-unknown.parquet",
        "2026-03-20-scan_exchange-ziekenhuis-voorbeeld.parquet",
    ]
    got = (
        duckdb.connect()
        .execute(
            "SELECT count(*), count(DISTINCT organisation) FROM read_parquet(?)",
            [f"{folder}/*.parquet"],
        )
        .fetchall()
    )
    assert got == [(5, 3)]


def test_slug_is_path_safe():
    assert slug("../../etc/passwd") == "etc-passwd"
    assert slug(HOSTILE) == "script-alert-1-script"
    assert slug("") == "unknown"


def test_export_usage_errors(hostile_store, tmp_path):
    db, _ = hostile_store
    assert main(["export", "--db", str(db), "--format", "parquet"]) == 2  # no stdout parquet
    assert main(["export", "--db", str(db), "--per", "country"]) == 2  # needs a directory
