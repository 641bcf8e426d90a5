"""Brief fuzzing of every hostcheck parser of attacker-controlled data (issue 11 "Also").

Derandomised so CI is repeatable; `bench/fuzz_hostcheck.py` runs the same targets long and
random, and a crash it finds becomes a test here (none so far: docs/hostcheck.md says how
many examples were run).  The two edge cases below are kept fixed on purpose.
"""

from __future__ import annotations

from typing import Any

import pytest
from fuzz_targets import TARGETS, evtx_target, text_log_target  # type: ignore[import-not-found]
from hypothesis import HealthCheck, given, settings

BRIEF = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target_briefly(name: str) -> None:
    strategy, target = TARGETS[name]

    @BRIEF
    @given(strategy)
    def run(value: Any) -> None:
        target(value)

    run()


def test_quoted_field_at_a_block_edge() -> None:
    # A quoted CSV value with a doubled quote right at the end of a read block.
    text_log_target("httpproxy", ['2021-03-03T03:06:27.123Z,"a""b",x', '"'], 7)


def test_evtx_cut_inside_the_file_header() -> None:
    from fuzz_targets import _BASE_EVTX

    evtx_target(_BASE_EVTX[:100])
    evtx_target(_BASE_EVTX[:4096])
