"""Fixtures of the census tests: a lab, a PostgreSQL store, a reference scan, a cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exwatch.lab import Lab
from exwatch.lab.check import score
from exwatch.scan.job import ScanJob, execute
from tests.census.cluster import (
    BROKERS,
    Worker,
    broker_url,
    drop_queue,
    require_broker,
    unique_queue,
    workers,
)
from tests.lab.running import free_port
from tests.store.backends import pg_database, pg_store_url  # noqa: F401  (fixture)

TIMEOUT = "1"  # seconds per phase: the lab answers at once, silent hosts cost this


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(hosts=120, port=free_port(), seed=23, workdir=tmp_path_factory.mktemp("lab")) as lab:
        yield lab


@pytest.fixture(scope="module")
def census_db(pg_database: str) -> str:  # noqa: F811  (the fixture imported above)
    """A store (a schema of the session's PostgreSQL database) for this module's censuses."""
    return pg_store_url(pg_database)


def lab_exclusion(lab: Lab) -> str:
    """One lab address that the census's exclusion list names."""
    return sorted(lab.ground_truth)[3]


@pytest.fixture(scope="module")
def reference(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """A single-process `exwatch scan` of the lab (exclusions as the censuses use them),
    checked against the ground truth; taken before the workers start (an idle machine)."""
    folder = tmp_path_factory.mktemp("reference")
    blocklist = folder / "blocklist.txt"
    blocklist.write_text(f"# asked not to be scanned\n{lab_exclusion(lab)}\n")
    out = folder / "scan.jsonl"
    summary = execute(
        ScanJob(
            specs=list(lab.cidr),
            port=lab.port,
            timeout=float(TIMEOUT),
            allow_private=True,
            exclude=[str(blocklist)],
            output=str(out),
            db=None,
            workers=1,
        )
    )
    assert not summary.interrupted
    records = [json.loads(line) for line in out.read_text().splitlines() if line]
    truth = {ip: t for ip, t in lab.ground_truth.items() if ip != lab_exclusion(lab)}
    result = score(records, truth)
    assert result.all_right, "\n".join(result.lines())
    return {r["ip"]: r for r in records}


@dataclass
class Cluster:
    kind: str
    broker: str
    db: str
    queue: str
    workers: list[Worker]

    def submit_args(self, lab: Lab, *extra: str) -> list[str]:
        return [
            "census", "submit", *lab.cidr, "--port", str(lab.port), "--allow-private",
            "--timeout", TIMEOUT, "--broker", self.broker, "--db", self.db,
            "--queue", self.queue, "--task-deadline", "10", *extra,
        ]  # fmt: skip


@pytest.fixture(scope="module", params=BROKERS)
def cluster(
    request: pytest.FixtureRequest, census_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two worker processes (one scanning process each, as two machines) on one broker,
    shared by the module's censuses (each census has its own id)."""
    kind = str(request.param)
    url = broker_url(kind)
    require_broker(url)
    queue = unique_queue()
    folder: Path = tmp_path_factory.mktemp(f"workers-{kind}")
    try:
        with workers(2, url, census_db, queue, folder, deadline=20) as started:
            yield Cluster(kind, url, census_db, queue, started)
    finally:
        drop_queue(url, queue)
