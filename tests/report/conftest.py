"""A real DuckDB store holding three ingested scans, enriched offline with a constituency."""

from __future__ import annotations

from pathlib import Path

import pytest

from exwatch.cli import main
from tests.report.records import CONSTITUENCY, three_scans, write_jsonl


def build_store(folder: Path, *, hostile: bool = False) -> tuple[Path, Path]:
    db = folder / "store.duckdb"
    constituency = folder / "constituency.csv"
    constituency.write_text(CONSTITUENCY, encoding="utf-8")
    paths = write_jsonl(folder, three_scans(hostile))
    assert main(["ingest", "--db", str(db), *map(str, paths)]) == 0
    assert main(["enrich", "--db", str(db), "--constituency", str(constituency)]) == 0
    return db, constituency


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_store(tmp_path_factory.mktemp("hostile"), hostile=True)
