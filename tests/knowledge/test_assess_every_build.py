"""`exwatch assess` on every build of builds.csv, in one process through a pipe, as a user
would feed it a build list: each gets a verdict, a reason and a basis for the whole
catalogue, and a patch lag."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from exwatch.knowledge.catalogue import default

EXWATCH = [sys.executable, "-m", "exwatch"]
VERDICTS = {"vulnerable", "patched", "undetermined", "not-affected"}  # never "mitigated" yet


def _assess_lines(builds: list[str]) -> list[dict[str, Any]]:
    p = subprocess.run(
        [*EXWATCH, "assess", "-", "--json"],
        input="# builds.csv\n" + "\n".join(builds) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(lines) == len(builds)
    return lines


def test_every_known_build_gets_the_whole_catalogue() -> None:
    cat = default()
    catalogued = {c.id for c in cat.cves}
    rows = list(cat.rows)
    out = _assess_lines([str(r.build) for r in rows])
    for row, got in zip(rows, out, strict=True):
        where = f"{row.build} (builds.csv line {row.line})"
        assert got["build"] == str(row.build), where
        assert got["known"] is True, where
        assert got["placement"] == "known build", where
        assert (got["cu"], got["su"]) == (row.cu, row.su), where
        assert got["release_date"] == row.release_date.isoformat(), where
        cves, reasons, basis = got["cves"], got["reasons"], got["basis"]
        assert isinstance(cves, dict)
        assert isinstance(reasons, dict)
        assert isinstance(basis, dict)
        assert set(cves) == set(reasons) == set(basis) == catalogued, where
        assert set(cves.values()) <= VERDICTS, where
        assert all(reasons.values()), where
        assert all(basis.values()), where
        lag = got["patch_lag"]
        assert isinstance(lag, dict), where
        assert lag["exact"] is True
        assert lag["build_date"] == row.release_date.isoformat()
        assert lag["sus_behind"] >= 0, where
        assert lag["days_behind"] >= 0, where
        if row.build == cat.latest_rows[row.product].build:
            assert (lag["days_behind"], lag["latest"]) == (0, str(row.build)), where


def test_every_cu_seen_only_as_its_cu() -> None:
    """What OWA paths show on 2013 and later: three-part builds, with upper-bound lags."""
    cat = default()
    cus = [cu for p in ("2013", "2016", "2019", "SE") for cu in cat.cus[p]]
    out = _assess_lines([".".join(map(str, cu.start_key)) for cu in cus])
    for cu, got in zip(cus, out, strict=True):
        assert got["precision"] == "cu"
        assert got["cu"] == cu.name
        assert got["su"] is None
        assert set(got["cves"].values()) <= VERDICTS
        lag = got["patch_lag"]
        assert lag["exact"] is False
        assert lag["build_date"] == cu.release.release_date.isoformat()
        # every update of the CU after its release build may be missing
        assert lag["sus_behind"] == len({r.su for r in cu.rows[1:] if r.su}), cu.name


def test_unreadable_line_in_a_batch_loses_nothing() -> None:
    p = subprocess.run(
        [*EXWATCH, "assess", "15.2.1544.9", "banana", "15.2.1748.24", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 1
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert [x.get("build") or x.get("input") for x in lines] == [
        "15.2.1544.9",
        "banana",
        "15.2.1748.24",
    ]
    assert "not an Exchange build" in lines[1]["error"]
    assert "Traceback" not in p.stderr
