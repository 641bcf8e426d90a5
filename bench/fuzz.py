"""Run the scanner's fuzz targets for longer than the test suite does.

    python bench/fuzz.py --seconds 60              # each target for about a minute
    python bench/fuzz.py --seconds 600 --only http-response

Each target (tests/fuzz/targets.py) is a hypothesis property over what a hostile server or a
hostile JSON lines file can send.  It is run in rounds of fresh random examples until the
time is up; a failure prints hypothesis's smallest failing example and stops with exit 1
(turn it into a regression test beside the parser's tests, then fix the parser).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings
from tests.fuzz.targets import TARGETS, check_ingest, jsonl_lines

from exwatch.store import open_store

ROUND = settings(
    max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def run(name: str, seconds: float) -> tuple[int, float]:
    """Rounds of examples for one target; returns (examples, seconds)."""
    if name == "jsonl-ingest":
        tmp = Path(tempfile.mkdtemp(prefix="exwatch-fuzz-"))
        store = open_store(tmp / "fuzz.duckdb")

        @settings(ROUND, max_examples=200)
        @given(jsonl_lines())
        def prop(lines: list[str]) -> None:
            check_ingest(store, tmp, lines)

        per_round = 200
    else:
        check, strategy = TARGETS[name]

        @ROUND
        @given(strategy)
        def prop(value: object) -> None:
            check(value)

        per_round = 2000
    t0 = time.monotonic()
    examples = 0
    while time.monotonic() - t0 < seconds:
        prop()
        examples += per_round
    return examples, time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [*TARGETS, "jsonl-ingest"]
    ap.add_argument("--seconds", type=float, default=30.0, help="time per target")
    ap.add_argument("--only", choices=names, action="append", help="run only these targets")
    args = ap.parse_args()
    print(f"{'target':>16} {'examples':>10} {'seconds':>8} {'per s':>8}")
    for name in args.only or names:
        examples, spent = run(name, args.seconds)
        print(f"{name:>16} {examples:>10,} {spent:>8.1f} {examples / spent:>8,.0f}")
    print("no failure found")


if __name__ == "__main__":
    main()
