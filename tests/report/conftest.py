"""A real store (DuckDB file, then PostgreSQL) holding three ingested scans, enriched offline
with a constituency: every report test runs on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from exwatch.cli import main
from tests.report.records import CONSTITUENCY, three_scans, write_jsonl
from tests.store.backends import (  # noqa: F401  (fixtures)
    BACKENDS,
    backend,
    db,
    new_target,
    pg_database,
)


def build_store(
    folder: Path, kind: str, request: pytest.FixtureRequest, *, hostile: bool = False
) -> tuple[str, Path]:
    target = new_target(kind, folder, request, "store")
    constituency = folder / "constituency.csv"
    constituency.write_text(CONSTITUENCY, encoding="utf-8")
    paths = write_jsonl(folder, three_scans(hostile))
    assert main(["ingest", "--db", target, *map(str, paths)]) == 0
    assert main(["enrich", "--db", target, "--constituency", str(constituency)]) == 0
    return target, constituency


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[str, Path]:
    return build_store(tmp_path_factory.mktemp("store"), request.param, request)


@pytest.fixture(scope="module", params=BACKENDS)
def hostile_store(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[str, Path]:
    return build_store(tmp_path_factory.mktemp("hostile"), request.param, request, hostile=True)
