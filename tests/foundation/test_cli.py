"""`exwatch assess` contract, usage errors and the no-traceback rule, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exwatch.cli import main

EXWATCH = [sys.executable, "-m", "exwatch"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXWATCH, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_assess_json_contract() -> None:
    p = run("assess", "15.01.2176.009", "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert j["build"] == "15.1.2176.9"
    assert j["product"] == "Exchange Server 2016"
    assert (j["cu"], j["su"], j["precision"], j["eol"]) == ("CU19", "Mar21SU", "su", True)
    assert j["release_date"] == "2021-03-02"
    assert j["cves"]["CVE-2021-26855"] == "patched"
    assert j["cves"]["CVE-2021-34473"] == "vulnerable"
    assert "CVE-2021-34473" in j["reasons"]


def test_assess_json_cu_level_and_se() -> None:
    j = json.loads(run("assess", "15.2.2562", "--json").stdout)
    assert (j["product"], j["precision"], j["su"], j["eol"]) == (
        "Exchange Server SE",
        "cu",
        None,
        False,
    )


def test_assess_table_is_readable() -> None:
    p = run("assess", "15.1.2176.2")
    assert p.returncode == 0
    assert "Exchange Server 2016 CU19" in p.stdout
    assert "vulnerable" in p.stdout


@pytest.mark.parametrize("bad", ["banana", "15.1", "15.1.2176.9.9.9"])
def test_invalid_build_is_one_line_and_nonzero(bad: str) -> None:
    p = run("assess", bad)
    assert p.returncode == 2
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stdout == ""


def test_usage_errors_exit_2() -> None:
    assert main(["assess"]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["assess", "--no-such-flag", "15.1.2176.9"]) == 2


def test_help_everywhere() -> None:
    from exwatch.cli import COMMANDS

    assert main(["--help"]) == 0
    for name in COMMANDS:
        p = run(name, "--help")
        assert p.returncode == 0, (name, p.stderr)
        assert "Usage:" in p.stdout


def test_selftest_command() -> None:
    p = run("selftest")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "FAIL" not in p.stdout


def test_readme_test_command_is_what_ci_runs() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash")[1:3]]
    assert len(blocks) == 2, "README must open with two bash blocks"
    assert blocks[1] in ci, "CI must run exactly the README's test command"
