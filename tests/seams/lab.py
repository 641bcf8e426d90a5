"""One lab scanned for real with every opt-in check, and the stores the seam tests read.

The scan runs once per test session (`exwatch scan --check all-safe` over a lab with planted
shells, mitigations, Exchange Online front ends and honeypots); it writes the JSON lines
and a DuckDB store.  Each test that writes to a store gets a fresh one: a copy of that
DuckDB file, or the JSON lines loaded into a new PostgreSQL schema by `exwatch ingest`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from exwatch.lab import Lab
from tests.lab.running import free_port
from tests.store.backends import pg_store_url

EXWATCH = [sys.executable, "-m", "exwatch"]
AGENT = "exwatch-seams (contact cert@cert.example)"
HOSTS = 200
BASE = "127.31.0.1"
ORGANISATION, CONTACT = "Lab Gemeente", "soc@lab.example"


def run(*args: str, timeout: float = 300, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """The CLI as users run it: a process of its own, output in pipes."""
    return subprocess.run(
        [*EXWATCH, *args], capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "COLUMNS": str(columns)},
    )  # fmt: skip


@dataclass(frozen=True)
class Checked:
    """The lab's scan: its JSON lines, the DuckDB store the scan wrote, its ground truth."""

    folder: Path
    out: Path
    duckdb: Path
    truth: dict[str, Any]
    constituency: Path
    port: int
    summary: str  # what the scan printed on stderr
    summary_file: Path  # what it wrote with --summary-json

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        lines = self.out.read_text("utf-8").splitlines()
        return [json.loads(line) for line in lines if line]

    @property
    def scan_id(self) -> str:
        return str(self.records[0]["scan_id"])

    def compromised(self) -> set[str]:
        """Addresses whose web-shell check says `compromised`, from the JSON lines."""
        return {
            r["ip"]
            for r in self.records
            if ((r.get("checks") or {}).get("compromise") or {}).get("state") == "compromised"
        }

    def store(self, backend: str, folder: Path, request: pytest.FixtureRequest) -> str:
        """A fresh store of `backend` holding the scan."""
        if backend == "duckdb":
            target = folder / "copy.duckdb"
            shutil.copyfile(self.duckdb, target)
            return str(target)
        url = pg_store_url(request.getfixturevalue("pg_database"))
        p = run("ingest", "--db", url, str(self.out))
        assert p.returncode == 0, p.stderr
        return url


def scan_lab(folder: Path, *, seed: int = 21, port: int | None = None) -> Checked:
    """Scan a lab of this seed (on `port`, else a free one) with every check."""
    port = free_port() if port is None else port
    folder.mkdir(parents=True, exist_ok=True)
    with Lab(hosts=HOSTS, port=port, seed=seed, base=BASE, workdir=folder / "lab") as lab:
        out, db, facts = folder / "r.jsonl", folder / "s.duckdb", folder / "summary.json"
        p = run(
            "scan", *lab.cidr, "--port", str(lab.port), "--allow-private", "--timeout", "3",
            "--check", "all-safe", "-o", str(out), "--db", str(db), "--user-agent", AGENT,
            "--summary-json", str(facts), columns=200,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "Traceback" not in p.stderr
        truth = dict(lab.ground_truth)
    constituency = folder / "constituency.csv"
    constituency.write_text(
        "match,organisation,sector,country,contact,language\n"
        f"127.31.0.0/16,{ORGANISATION},municipality,BE,{CONTACT},en\n",
        encoding="utf-8",
    )
    return Checked(folder, out, db, truth, constituency, port, p.stderr, facts)


@pytest.fixture(scope="session")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Checked:
    return scan_lab(tmp_path_factory.mktemp("seams"))


@pytest.fixture(scope="session")
def rescanned(checked: Checked) -> Checked:
    """The same addresses and port a week later, holding other servers (another seed):
    hosts patched, mitigated, newly vulnerable, newly compromised, cleaned up."""
    return scan_lab(checked.folder / "later", seed=22, port=checked.port)
