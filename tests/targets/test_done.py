"""The resumed scan's set of done (ip, port) pairs: exact, and small for millions of pairs."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from exwatch.scan.done import DoneSet

_PAIRS = st.tuples(
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(str),
        st.sampled_from(["010.1.1.1", "not-an-ip", ""]),
    ),
    st.integers(0, 70000),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_PAIRS, max_size=60), st.lists(_PAIRS, max_size=20))
def test_membership_is_exactly_a_sets(
    done: list[tuple[str, int]], probes: list[tuple[str, int]]
) -> None:
    packed = DoneSet(done)
    reference = set(done)
    assert len(packed) == len(reference)
    for pair in [*done, *probes]:
        assert (pair in packed) == (pair in reference)
    assert ("1.2.3.4",) not in packed
    assert "1.2.3.4" not in packed


def test_many_pairs_take_eight_bytes_each() -> None:
    n = 100_000
    pairs = [(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 443) for i in range(n)]
    tracemalloc.start()
    try:
        done = DoneSet(pairs)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(done) == n
    assert done.nbytes == 8 * n
    assert ("10.1.2.1", 443) in done
    assert ("10.1.2.1", 444) not in done
    assert kept < 2 * 1024 * 1024  # a set of the same tuples: about 16 MB
    assert peak < 12 * 1024 * 1024  # while sorting: one chunk of Python ints
