"""A real scan of a small lab (loopback only): each Exchange record carries the patch lag
and, for every vulnerable CVE, the basis the verdict rests on."""

from __future__ import annotations

import json
from pathlib import Path

from exwatch.assess import assess
from exwatch.knowledge.catalogue import default
from exwatch.lab import Lab
from exwatch.lab.check import score
from exwatch.scan.job import ScanJob, execute
from tests.lab.running import free_port


def test_scan_records_carry_patch_lag_and_basis(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with Lab(
        hosts=60, port=free_port(), seed=13, workdir=tmp_path / "lab", backend="python"
    ) as lab:
        job = ScanJob(
            specs=list(lab.cidr),
            port=lab.port,
            timeout=2.0,
            concurrency=60,
            allow_private=True,
            output=str(out),
            db=None,
        )
        summary = execute(job)
        truth = lab.ground_truth
    assert not summary.interrupted
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    result = score(records, truth)
    assert result.all_right, "\n".join(result.lines(20))
    sources = default().sources
    placed = 0
    for r in records:
        ex = r.get("exchange")
        if not ex or not ex.get("build"):
            continue
        want = assess(ex["build"]).to_json()
        assert ex["patch_lag"] == want["patch_lag"]
        vulnerable = {c for c, v in r["cves"].items() if v == "vulnerable"}
        assert set(ex["basis"]) == vulnerable
        for cve, basis in ex["basis"].items():
            assert basis == want["basis"][cve]
            assert basis.rsplit("[", 1)[1].rstrip("]") in sources
        placed += ex["patch_lag"] is not None
    assert placed >= 10, "the lab should hold enough placeable Exchange builds"
