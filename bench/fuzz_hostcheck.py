"""Long fuzzing of the hostcheck parsers (the targets of tests/hostcheck/fuzz_targets.py).

    .venv/bin/python bench/fuzz_hostcheck.py --examples 5000 [--target text-iis ...]

Random (not derandomised), each target for `--examples` examples; prints examples run and
time per target, and the falsifying example of any failure (add it to test_fuzz.py as a
regression test).  Exit 1 when a target failed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hostcheck"))

from fuzz_targets import TARGETS  # type: ignore[import-not-found]
from hypothesis import HealthCheck, given, settings


def _runner(strategy: Any, target: Any, examples: int, counter: list[int]) -> Any:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(value: Any) -> None:
        counter[0] += 1
        target(value)

    return run


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--target", action="append", choices=sorted(TARGETS))
    args = ap.parse_args()
    failed = 0
    for name in args.target or sorted(TARGETS):
        strategy, target = TARGETS[name]
        counter = [0]
        run = _runner(strategy, target, args.examples, counter)
        t0 = time.perf_counter()
        try:
            run()
            outcome = "ok"
        except Exception:  # a falsified target: report and go on with the others
            failed += 1
            outcome = "FAILED"
            traceback.print_exc()
        print(f"{name:16} {counter[0]:7} examples {time.perf_counter() - t0:7.1f} s  {outcome}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
