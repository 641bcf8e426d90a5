"""End to end with the opt-in checks (issue 18): `exwatch scan --check all-safe` over a
lab with planted shells, catch-alls, look-alikes, vulnerable, patched and mitigated
servers; every host's compromise and behavioural state is right, and reports count them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exwatch.lab import Lab
from exwatch.lab.check import score
from exwatch.lab.compromise import COMPROMISE_KINDS

from ..enrich.conftest import write_mmdb
from ..lab.running import free_port

pytestmark = pytest.mark.slow

EXWATCH = [sys.executable, "-m", "exwatch"]


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path, Path]]:
    """The lab, scanned once by the CLI with every check: (lab, JSON lines, store)."""
    work = tmp_path_factory.mktemp("checks-e2e")
    with Lab(hosts=400, port=free_port(), seed=21, base="127.22.0.1", workdir=work / "lab") as lab:
        out, db = work / "r.jsonl", work / "s.duckdb"
        p = subprocess.run(
            [
                *EXWATCH, "scan", *lab.cidr, "--port", str(lab.port), "--allow-private",
                "--timeout", "2", "--check", "all-safe", "-o", str(out), "--db", str(db), "-q",
            ],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "Traceback" not in p.stderr
        yield lab, out, db


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def test_every_host_is_right_with_all_safe_checks(checked: tuple[Lab, Path, Path]) -> None:
    lab, out, _ = checked
    records = _records(out)
    assert len(records) == len(lab.ground_truth)
    result = score(records, lab.ground_truth)
    assert result.all_right, "\n".join(result.lines(40))
    truth = {ip: t for ip, t in lab.ground_truth.items() if "checks" in t}
    kinds = Counter(t["checks"]["compromise_kind"] for t in truth.values())
    assert set(COMPROMISE_KINDS) <= set(kinds), kinds
    by_ip = {r["ip"]: r for r in records}
    # zero compromised on the 200-for-everything and the look-alike hosts
    for ip, t in truth.items():
        if t["checks"]["compromise_kind"] in ("catchall", "lookalike-page", "lookalike-errors"):
            assert by_ip[ip]["checks"]["compromise"]["state"] == "unknown", ip
    # every record lists which checks ran: all four on on-prem Exchange, none elsewhere
    for r in records:
        ran = (r["checks"] or {}).get("ran", [])
        if r["exchange"]:
            assert ran == ["proxylogon", "proxyshell", "proxynotshell-mitigation", "webshells"]
        else:
            assert ran == [], r["ip"]
    # the behavioural readings settled verdicts the build left open, and set `mitigated`
    settled = Counter(
        (s["build"], s["verdict"])
        for r in records
        for s in (r["checks"] or {}).get("settled", {}).values()
    )
    assert settled[("undetermined", "vulnerable")] > 0
    assert settled[("undetermined", "patched")] > 0
    assert settled[("vulnerable", "mitigated")] > 0


def test_report_by_country_of_compromised_hosts(
    checked: tuple[Lab, Path, Path], tmp_path: Path
) -> None:
    """The "how many are hacked, and where" table on the lab, in every format: the first
    quarter of the lab placed in Germany, the next in Belgium, the rest in the Netherlands."""
    lab, _, db = checked
    geo = tmp_path / "country.mmdb"
    nets = {"127.22.0.0/16": "NL", "127.22.0.0/26": "DE", "127.22.0.64/26": "BE"}
    write_mmdb(
        geo,
        "GeoLite2-Country",
        {
            n: {"country": {"iso_code": c}, "registered_country": {"iso_code": c}}
            for n, c in nets.items()
        },
    )

    def place(ip: str) -> str:
        last = int(ip.rsplit(".", 2)[1]) * 256 + int(ip.rsplit(".", 1)[1])
        return "DE" if last < 64 else "BE" if last < 128 else "NL"

    want = Counter(
        place(ip)
        for ip, t in lab.ground_truth.items()
        if t.get("checks") and t["checks"]["compromise"]["state"] == "compromised"
    )
    total = sum(want.values())
    assert total >= 5
    base = [*EXWATCH, "report", "--db", str(db), "--view", "compromise", "--by", "country"]

    def run(*extra: str) -> str:
        p = subprocess.run(
            [*base, "--geo-db", str(geo), *extra],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "COLUMNS": "160"},
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "Traceback" not in p.stderr
        return p.stdout

    rows = json.loads(run("--format", "json"))
    assert {r["key"]: r["compromised"] for r in rows if r["compromised"]} == dict(want)
    top = max(want, key=lambda c: want[c])
    assert rows[0]["key"] == top
    assert rows[0]["share_pct"] == round(100 * want[top] / total, 1)
    lines = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    assert {r["key"]: int(r["compromised"]) for r in lines if int(r["compromised"])} == dict(want)
    table = " ".join(run().split())
    assert f"{total} of " in table
    assert f"{rows[0]['share_pct']:.1f} % of them in country {top}" in table
    page = tmp_path / "report.html"
    run("--format", "html", "-o", str(page))
    html = page.read_text("utf-8")
    assert '<section id="compromise">' in html
    assert f"{total} of " in html
