"""The opt-in `--transport wreq` end to end: `exwatch scan` in a pipe over a whole lab
(every hostile behaviour, silent and closed hosts, every web and suspect profile), each
record checked against the ground truth, and the same records as the default transport
gives apart from the TLS version and cipher wreq does not report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exwatch.lab import Lab
from exwatch.lab.check import score
from exwatch.lab.plan import HOSTILE_STATUS, SUSPECT_PROFILES, WEB_PROFILES

from ..lab.running import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(
        hosts=600,
        port=free_port(),
        seed=7,
        base="127.23.0.1",
        workdir=tmp_path_factory.mktemp("lab"),
    ) as lab:
        yield lab


def _scan(lab: Lab, out: Path, *options: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "exwatch", "scan", *lab.cidr),
            *("--port", str(lab.port), "--allow-private", "--no-db", "-o", str(out)),
            *("--timeout", "5", "--concurrency", "300", "--workers", "1"),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]


def test_wreq_transport_scans_the_whole_lab_right(lab: Lab, tmp_path: Path) -> None:
    kinds = {t["kind"] for t in lab.ground_truth.values()}
    assert {f"hostile-{b}" for b in HOSTILE_STATUS} | {"silent", "closed", "online"} <= kinds
    profiles = {t["profile"] for t in lab.ground_truth.values()}
    assert set(SUSPECT_PROFILES) | set(WEB_PROFILES) <= profiles

    config = tmp_path / "exwatch.toml"
    config.write_text('[scan]\ntransport = "wreq"\n', encoding="utf-8")  # the config key
    fast = _scan(lab, tmp_path / "wreq.jsonl", "--config", str(config))
    result = score(fast, lab.ground_truth)
    assert result.all_right, "\n".join(result.lines(50))
    # wreq answered: its records have a certificate but no TLS version
    answered = [r for r in fast if r["status"] == "success" and r["tls"]]
    assert answered
    assert all(r["tls"]["version"] is None and r["tls"]["sha256"] for r in answered)

    # Host by host the same as the default transport, but for what wreq cannot report.
    default = {r["ip"]: r for r in _scan(lab, tmp_path / "python.jsonl", "--transport=python")}
    volatile = {"scan_id", "timestamp", "duration_ms", "error"}  # errors: wording only
    for record in fast:
        other = default[record["ip"]]
        assert record["status"] == other["status"], record["ip"]
        mine = {k: v for k, v in record.items() if k not in volatile}
        theirs = {k: v for k, v in other.items() if k not in volatile}
        if isinstance(theirs.get("tls"), dict):
            theirs["tls"] = {**theirs["tls"], "version": None, "cipher": None}
        if isinstance(mine.get("tls"), dict) and record["status"] != "success":
            # a host that failed after TLS: its certificate came from Python's ssl
            mine["tls"] = {**mine["tls"], "version": None, "cipher": None}
        assert mine == theirs, record["ip"]


def test_unknown_transport_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "exwatch", "scan", "127.0.0.1", "--allow-private"),
            *("--no-db", "-o", str(tmp_path / "x.jsonl"), "--transport", "curl"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.jsonl").exists()
