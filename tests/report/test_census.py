"""The README's census sequence, run as written on a lab, as two shards of one census.

The lab lives on 127.16.x.y, which has no country; a GeoLite2-format country database found
where exwatch looks for one ($XDG_DATA_HOME/exwatch) places it in Belgium, so that the
README's `--country BE` step has something to show.  Everything stays on loopback.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]  # netaddr ships no type hints

from exwatch.lab import Lab
from tests.lab.running import free_port
from tests.store.backends import new_target

pytestmark = pytest.mark.slow

EXWATCH = [sys.executable, "-m", "exwatch"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(hosts=120, port=free_port(), seed=11, workdir=tmp_path_factory.mktemp("lab")) as lab:
        yield lab


def _lab_geo(folder: Path) -> dict[str, str]:
    """An environment whose default geo folder holds a country database: lab = BE."""
    (folder / "exwatch").mkdir(parents=True)
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    writer.insert_network(
        IPSet(["127.16.0.0/12"]),
        {"country": {"iso_code": "BE"}, "registered_country": {"iso_code": "BE"}},
    )
    writer.to_db_file(str(folder / "exwatch" / "GeoLite2-Country.mmdb"))
    return {**os.environ, "XDG_DATA_HOME": str(folder), "COLUMNS": "120"}


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*EXWATCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def _prepare(lab: Lab, folder: Path) -> tuple[list[str], str]:
    hosts = sorted(lab.ground_truth, key=ipaddress.ip_address)
    (folder / "targets.txt").write_text("\n".join(lab.cidr) + "\n")
    excluded = hosts[5]
    (folder / "blocklist.txt").write_text(
        f"# a constituent who asked not to be scanned\n{excluded}/32\n"
    )
    # The first 40 lab addresses belong to a municipality of the constituency.
    first = ipaddress.ip_address(hosts[0])
    net = ipaddress.ip_network(f"{first}/26", strict=False)
    (folder / "be-constituency.csv").write_text(
        f"match,organisation,sector,country\n{net},Gemeente Lab,municipality,BE\n"
    )
    return hosts, excluded


def test_readme_census_sequence_across_two_shards(lab: Lab, tmp_path: Path) -> None:
    env = _lab_geo(tmp_path / "xdg")
    hosts, excluded = _prepare(lab, tmp_path)
    lab_flags = ["--allow-private", "--port", str(lab.port), "--timeout", "2", "-q"]
    # Two machines, each scanning its shard into its own store and JSON lines...
    for i in (1, 2):
        run(
            ["scan", "-l", "targets.txt", "--exclude", "blocklist.txt", "--rate", "2000",
             "--shard", f"{i}/2", "--db", f"machine{i}.duckdb", "-o", f"shard{i}.jsonl",
             *lab_flags],
            tmp_path, env,
        )  # fmt: skip
    records = [r for i in (1, 2) for r in _lines(tmp_path / f"shard{i}.jsonl")]
    ids = {str(r["scan_id"]) for r in records}
    assert len(ids) == 1
    assert next(iter(ids)).startswith("census-")
    # ... brought together, then the README's sequence.
    run(["ingest", "shard1.jsonl", "shard2.jsonl", "--db", "census.duckdb"], tmp_path, env)
    by_country = run(["report", "--db", "census.duckdb", "--by", "country"], tmp_path, env).stdout
    assert "BE" in by_country
    assert "Belgium" in by_country
    sectors = run(
        ["report", "--db", "census.duckdb", "--country", "BE", "--by", "sector",
         "--constituency", "be-constituency.csv"],
        tmp_path, env,
    ).stdout  # fmt: skip
    assert "municipality" in sectors
    assert "Constituency: be-constituency.csv" in " ".join(sectors.split())
    run(["report", "--db", "census.duckdb", "--format", "html", "-o", "report.html"], tmp_path, env)
    assert "municipality" in (tmp_path / "report.html").read_text(encoding="utf-8")
    run(
        ["export", "--db", "census.duckdb", "--format", "shadowserver", "--per", "country",
         "-o", "out/"],
        tmp_path, env,
    )  # fmt: skip
    (be,) = (tmp_path / "out").iterdir()
    assert be.name.endswith("-scan_exchange-be.csv")
    rows = list(csv.DictReader(be.read_text(encoding="utf-8").splitlines()))
    assert rows
    assert {r["geo"] for r in rows} == {"BE"}
    assert "municipality" in {r["sector"] for r in rows}
    # One census: the whole lab but the excluded address, both shards present.
    trend = json.loads(
        run(
            ["report", "--db", "census.duckdb", "--by", "scan", "--format", "json"], tmp_path, env
        ).stdout
    )
    assert len(trend) == 1
    (census,) = trend
    assert (census["shards"], census["missing_shards"]) == ("2/2", [])
    assert census["targets_done"] == len(hosts) - 1
    assert excluded not in {r["ip"] for r in records}
    sector_rows = json.loads(
        run(
            ["report", "--db", "census.duckdb", "--by", "sector", "--format", "json"], tmp_path, env
        ).stdout
    )
    assert {r["key"] for r in sector_rows} >= {"municipality"}
    assert sum(r["hosts"] for r in sector_rows) == census["hosts"]
    # The README's patch lag and KEV commands, as written.
    months = run(["report", "--db", "census.duckdb", "--by", "months"], tmp_path, env).stdout
    assert ">36" in months
    assert "unknown" in months
    run(
        ["report", "--db", "census.duckdb", "--by", "kev", "--format", "csv",
         "-o", "notify-first.csv"],
        tmp_path, env,
    )  # fmt: skip
    kev_rows = list(csv.DictReader((tmp_path / "notify-first.csv").read_text().splitlines()))
    assert kev_rows
    assert all(r["kev_cves"].startswith("CVE-") for r in kev_rows)
    assert len(kev_rows) == census["kev"]
    kev_cves = run(["report", "--db", "census.duckdb", "--by", "cve", "--kev"], tmp_path, env)
    assert "CVE-2021-26855" in kev_cves.stdout
    lagged = json.loads(
        run(
            ["report", "--db", "census.duckdb", "--by", "sector", "--behind-months", "12",
             "--format", "json"],
            tmp_path, env,
        ).stdout
    )  # fmt: skip
    assert {r["behind_months_min"] for r in lagged} == {12}
    assert sum(r["lag_hosts"] + r["lag_unknown"] for r in lagged) == census["exchange"]


def test_two_shards_write_one_postgresql_census_at_once(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = _lab_geo(tmp_path / "xdg")
    hosts, _ = _prepare(lab, tmp_path)
    db = new_target("postgresql", tmp_path, request)
    procs = [
        subprocess.Popen(
            [
                *EXWATCH,
                "scan",
                "-l",
                "targets.txt",
                "--rate",
                "1000",
                "--shard",
                f"{i}/2",
                "--scan-id",
                "be-weekly",
                "--db",
                db,
                "--allow-private",
                "--port",
                str(lab.port),
                "--timeout",
                "2",
                "-q",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    trend = json.loads(
        run(["report", "--db", db, "--by", "scan", "--format", "json"], tmp_path, env).stdout
    )
    (census,) = trend
    assert census["scan_id"] == "be-weekly"
    assert (census["shards"], census["status"]) == ("2/2", "finished")
    assert census["targets_done"] == census["targets_expected"] == len(hosts)
    assert census["complete_pct"] == 100.0


def test_census_id_ignores_what_differs_between_machines(tmp_path: Path) -> None:
    from exwatch.scan.job import ScanJob

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("10.0.0.0/8\n")
    b.write_text("10.0.0.0/8\n")
    one = ScanJob(specs=["192.0.2.0/24"], exclude=[str(a)], shard=(0, 4), rate=1000, db="x.duckdb")
    two = ScanJob(specs=["192.0.2.0/24"], exclude=[str(b)], shard=(3, 4), rate=50, output="o.jsonl")
    assert one.census_id("20261205") == two.census_id("20261205")
    other = ScanJob(specs=["192.0.2.0/24"], exclude=[str(a)], shard=(0, 4), seed=9)
    assert other.census_id("20261205") != one.census_id("20261205")
    b.write_text("10.0.0.0/8\n192.0.2.7/32\n")
    assert two.census_id("20261205") != one.census_id("20261205")
