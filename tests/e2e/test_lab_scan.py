"""End to end: the lab of simulated servers, scanned by `exwatch scan`, checked against
its ground truth; plus the record contract, the store, interruption and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from exwatch.lab import Lab
from exwatch.lab.check import score
from exwatch.lab.plan import EXCHANGE_PROFILES, SUSPECT_PROFILES, WEB_PROFILES
from exwatch.scan.job import ScanJob, ScanSummary, execute

from ..lab.running import free_port

pytestmark = pytest.mark.slow

EXWATCH = [sys.executable, "-m", "exwatch"]


@pytest.fixture(scope="module")
def big_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    # A free port and a base of its own: other checkouts run this test at the same time.
    with Lab(
        hosts=3000,
        port=free_port(),
        seed=7,
        base="127.19.0.1",
        workdir=tmp_path_factory.mktemp("lab"),
    ) as lab:
        yield lab


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _scan_lab(lab: Lab, tmp_path: Path, workers: int) -> tuple[ScanSummary, Path, Path]:
    out, db = tmp_path / "r.jsonl", tmp_path / "s.duckdb"
    job = ScanJob(
        specs=list(lab.cidr),
        port=lab.port,
        # Generous: the lab's own servers share this machine's cores with the scan (and,
        # on a loaded machine, with everything else), and a late answer must not be a timeout.
        timeout=5.0,
        concurrency=400,
        allow_private=True,
        output=str(out),
        db=str(db),
        workers=workers,
    )
    summary = execute(job)
    assert not summary.interrupted
    return summary, out, db


def test_whole_lab_is_scanned_right(big_lab: Lab, tmp_path: Path) -> None:
    # every shape of issue 12 is in the lab: each Exchange profile, Exchange Online, the
    # honeypots and impostors, and every negative
    profiles = {t["profile"] for t in big_lab.ground_truth.values()}
    assert set(EXCHANGE_PROFILES) | set(SUSPECT_PROFILES) | set(WEB_PROFILES) <= profiles
    assert "exchange-online" in profiles
    _, out, db = _scan_lab(big_lab, tmp_path, workers=1)
    records = _records(out)
    assert len(records) == len(big_lab.ground_truth)
    result = score(records, big_lab.ground_truth)
    assert result.all_right, "\n".join(result.lines(50))
    found = {
        key: sum(1 for r in records if r[key])
        for key in ("exchange", "exchange_online", "suspect")
    }  # fmt: skip
    counts = big_lab.ground_truth_document["counts"]
    assert found == {
        "exchange": counts["exchange"],
        "exchange_online": counts["online"],
        "suspect": counts["suspect"],
    }
    # every record carries the contract's fields
    for r in records[:50]:
        assert {
            "ip",
            "port",
            "hostname",
            "timestamp",
            "status",
            "exchange",
            "cves",
            "tls",
            "ntlm",
            "headers",
        } <= set(r)
    # the store holds exactly the same rows, in one scan
    con = duckdb.connect(str(db), read_only=True)
    try:
        (rows,) = con.execute("select count(*) from results").fetchone() or (0,)
        (scans,) = con.execute("select count(*) from scans").fetchone() or (0,)
    finally:
        con.close()
    assert (rows, scans) == (len(records), 1)


def _refused_scan(tmp_path: Path, *args: str) -> str:
    """Run `exwatch scan ARGS --no-db -o FILE`, expect a usage error; its stderr."""
    out = tmp_path / "x.jsonl"
    p = subprocess.run(
        [*EXWATCH, "scan", *args, "--no-db", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert not out.exists()
    return p.stderr


def test_scan_cli_refuses_loopback_without_allow_private(tmp_path: Path) -> None:
    assert "127.16.0.1" in _refused_scan(tmp_path, "127.16.0.1")


def test_scan_cli_refuses_unknown_extra_probe(tmp_path: Path) -> None:
    err = _refused_scan(tmp_path, "127.16.0.1", "--allow-private", "--add-probe", "http-exploit")
    assert "unknown probe" in err
    assert "http-frontend" in err  # the message lists the known ids


def test_interrupted_scan_keeps_results_and_resumes(big_lab: Lab, tmp_path: Path) -> None:
    out, db = tmp_path / "r.jsonl", tmp_path / "s.duckdb"
    args = [
        *EXWATCH,
        "scan",
        *big_lab.cidr,
        "--port",
        str(big_lab.port),
        "--allow-private",
        "--timeout",
        "2",
        "--concurrency",
        "50",
        "--rate",
        "150",  # 20 s for the lab: a loaded machine must not finish it before the signal
        "-o",
        str(out),
        "--db",
        str(db),
        "-q",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        not out.exists() or len(out.read_text().splitlines()) < 300
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    first = _records(out)
    assert 300 <= len(first) < len(big_lab.ground_truth), (len(first), err)
    # resume: the same command with --resume finishes the rest, nothing twice
    p = subprocess.run(
        [*args[:-1], "--resume", "-q"], capture_output=True, text=True, timeout=300, check=False
    )
    assert p.returncode == 0, p.stderr
    records = _records(out)
    ips = [r["ip"] for r in records]
    assert len(ips) == len(set(ips)) == len(big_lab.ground_truth)
    assert len({r["scan_id"] for r in records}) == 1
    con = duckdb.connect(str(db), read_only=True)
    try:
        (rows,) = con.execute("select count(distinct ip) from results").fetchone() or (0,)
    finally:
        con.close()
    assert rows == len(big_lab.ground_truth)


def test_sigterm_marks_scan_interrupted(big_lab: Lab, tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    args = [
        *EXWATCH,
        "scan",
        *big_lab.cidr,
        "--port",
        str(big_lab.port),
        "--allow-private",
        "--rate",
        "200",
        "--db",
        str(db),
        "-q",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=60)
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("select status from scans").fetchone()
        (n,) = con.execute("select count(*) from results").fetchone() or (0,)
    finally:
        con.close()
    assert row is not None
    assert row[0] == "interrupted"
    assert n > 0


def test_two_workers_share_the_space_without_gaps_or_duplicates(
    big_lab: Lab, tmp_path: Path
) -> None:
    summary, out, db = _scan_lab(big_lab, tmp_path, workers=2)
    records = _records(out)
    ips = [r["ip"] for r in records]
    assert len(ips) == len(set(ips)) == len(big_lab.ground_truth)
    assert set(ips) == set(big_lab.ground_truth)
    assert summary.tally.done == len(records)
    result = score(records, big_lab.ground_truth)
    assert result.all_right, "\n".join(result.lines(50))
    con = duckdb.connect(str(db), read_only=True)
    try:
        (rows,) = con.execute("select count(*) from results").fetchone() or (0,)
    finally:
        con.close()
    assert rows == len(records)


def _verdict_view(record: dict[str, object]) -> dict[str, object]:
    """What a census reports about one host (issue 10 #5: nothing here may flip)."""
    return {k: record[k] for k in ("status", "exchange", "cves", "exchange_online", "suspect")}


def test_two_scans_of_an_unchanged_lab_agree_host_by_host(tmp_path: Path) -> None:
    """Issue 10 #5: behind a balancer main saw one server's build, a different one from
    scan to scan, so a diff of two scans of the unchanged lab invented patched and newly
    vulnerable hosts.  Every server's build is now seen and the oldest judged, so two
    scans agree on every host; balanced hosts list all their builds."""
    with Lab(
        hosts=400, port=free_port(), seed=11, base="127.19.64.1", workdir=tmp_path / "lab"
    ) as lab:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        _, out_a, _ = _scan_lab(lab, tmp_path / "a", workers=1)
        _, out_b, _ = _scan_lab(lab, tmp_path / "b", workers=1)
        truth = lab.ground_truth
    first = {r["ip"]: _verdict_view(r) for r in _records(out_a)}
    second = {r["ip"]: _verdict_view(r) for r in _records(out_b)}
    assert set(first) == set(second) == set(truth)
    changed = [ip for ip in first if first[ip] != second[ip]]
    assert changed == [], "\n".join(f"{ip} {first[ip]} {second[ip]}" for ip in changed[:3])
    balanced = [ip for ip, t in truth.items() if str(t["profile"]).startswith("load-balancer")]
    assert len(balanced) >= 2
    for ip in balanced:
        exchange = first[ip]["exchange"]
        assert isinstance(exchange, dict)
        assert len(exchange["builds_seen"]) >= 2, ip
        assert exchange["build"] == exchange["builds_seen"][0]  # the oldest is judged
