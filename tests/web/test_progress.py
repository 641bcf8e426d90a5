"""A census still running: its page and API show each shard's progress as rows land."""

from __future__ import annotations

from pathlib import Path

import pytest

from exwatch.store import open_store
from tests.report.records import record
from tests.store.backends import new_target
from tests.web.server import serving


def _rows(prefix: str) -> list[dict[str, object]]:
    # Records of shard 1/2, as the scanner of that shard writes them.
    return [{**record("live", f"{prefix}.{i}", "2026-04-01"), "shard": "1/2"} for i in range(10)]


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_running_census_progress(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = new_target(backend, tmp_path, request, "live")
    with open_store(db) as store:
        store.start_scan({"live": True}, scan_id="live", part="1/2", targets=40)
        store.append(_rows("193.190.1"))
    with serving(db) as site:
        data = site.get("/api/scans/live").json()
        assert data["status"] == "running"
        assert data["missing_shards"] == ["2/2"]
        (part,) = data["parts"]
        assert (part["recorded"], part["targets"], part["complete_pct"]) == (10, 40, 25.0)
        page = site.get("/scans/live").text
        assert 'data-status="running"' in page  # the page's script keeps refreshing it
        with open_store(db) as store:
            store.append(_rows("193.190.2"))
        assert site.get("/api/scans/live").json()["parts"][0]["recorded"] == 20
