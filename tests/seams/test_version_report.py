"""Exchange hosts whose build could not be read are labelled "build not read" in the
by-version report, in every format (table, JSON, CSV, the HTML report's chart), and in a
diff by version; never an empty row."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.seams.lab import Checked, run

pytestmark = pytest.mark.slow
LABEL = "build not read"


def test_hosts_without_a_build_are_labelled(
    checked: Checked, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    hidden = sum(
        1
        for r in checked.records
        if r["exchange"] and not r["exchange"].get("build")
        and not r.get("exchange_online") and not r.get("suspect")
    )  # fmt: skip
    assert hidden > 0  # the lab has Exchange 2003 and closed-OWA hosts without a build
    db = checked.store("duckdb", tmp_path, request)
    base = ("report", "--db", db, "--by", "version")
    rows = json.loads(run(*base, "--format", "json").stdout)
    (row,) = [r for r in rows if r["key"] is None]
    assert (row["name"], row["exchange"]) == (LABEL, hidden)
    assert all(r["name"] for r in rows)
    table = list(csv.DictReader(io.StringIO(run(*base, "--format", "csv").stdout)))
    (row_csv,) = [r for r in table if not r["key"]]
    assert (row_csv["name"], int(row_csv["exchange"])) == (LABEL, hidden)
    text = run(*base, "--limit", "500", columns=200).stdout
    (line,) = [line for line in text.splitlines() if LABEL in line]
    assert f" {hidden} " in line
    html = tmp_path / "r.html"
    done = run("report", "--db", db, "--format", "html", "-o", str(html))
    assert done.returncode == 0, done.stderr
    assert LABEL in html.read_text("utf-8")
    diff = run("diff", checked.scan_id, checked.scan_id, "--db", db, "--by", "version",
               "--format", "json")  # fmt: skip
    assert diff.returncode == 0, diff.stderr
    assert all(r["name"] == LABEL for r in json.loads(diff.stdout) if r["key"] is None)
