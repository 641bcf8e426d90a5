"""`exwatch scan --check` as people run it: help that lists every request, refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from exwatch.checks import behaviour, catalogue, indicators

EXWATCH = [sys.executable, "-m", "exwatch"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXWATCH, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_help_lists_every_check_with_what_it_sends() -> None:
    p = _run("scan", "--help")
    assert p.returncode == 0
    text = p.stdout
    for info in catalogue.catalogue():
        assert f"{info.id}: " in text
    for check in behaviour.load().checks:
        assert check.request.path in text
        for name, value in check.request.headers:
            assert f"{name}: {value}" in text
    data = indicators.load()
    assert f"each of the {len(data.paths)} known shell paths" in text
    assert "all-safe = proxylogon, proxyshell, proxynotshell-mitigation, webshells" in text
    assert "none sends a payload" in text


def test_unknown_check_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    p = _run(
        "scan", "127.16.0.9", "--allow-private", "--check", "webshells,exploit",
        "--no-db", "-o", str(out),
    )  # fmt: skip
    assert p.returncode == 2
    assert "unknown check(s): exploit" in p.stderr
    assert "groups: all-safe" in p.stderr
    assert "Traceback" not in p.stderr
    assert not out.exists()


def test_check_probes_are_not_reachable_through_add_probe(tmp_path: Path) -> None:
    p = _run(
        "scan", "127.16.0.9", "--allow-private", "--add-probe", "http-webshells",
        "--no-db", "-o", str(tmp_path / "r.jsonl"),
    )  # fmt: skip
    assert p.returncode == 2
    assert "intrusive" in p.stderr
    assert "--check" in p.stderr


def test_checks_are_part_of_what_defines_a_scan() -> None:
    """--resume and the shards of one census must run the same checks; a scan without
    checks keeps the parameters (and census id) it had before checks existed."""
    from exwatch.scan.job import ScanJob

    plain = ScanJob(specs=["192.0.2.0/28"])
    checked = ScanJob(specs=["192.0.2.0/28"], checks=["webshells"])
    assert "checks" not in plain.params()
    assert checked.params()["checks"] == ["webshells"]
    assert plain.census_id("20260101") != checked.census_id("20260101")
    assert checked.census_id("20260101") == ScanJob(
        specs=["192.0.2.0/28"], checks=["webshells"], shard=(1, 2)
    ).census_id("20260101")
