"""Patch lag of builds and groups as reports count it (report/lag.py), against builds.csv.

Expected values are worked out by hand from builds.csv (line numbers in the comments)."""

from __future__ import annotations

from datetime import date

import pytest

from exwatch.assess import assess
from exwatch.exposure import DAYS_PER_MONTH
from exwatch.knowledge.catalogue import default
from exwatch.report.lag import (
    BuildLag,
    Thresholds,
    bucket_field,
    build_lag,
    catalogue_as_of,
    summarise,
    weighted_median,
)

DEC = date(2026, 12, 5)


@pytest.mark.parametrize(
    ("build", "day", "want"),
    [
        # SE Feb26SU 2026-02-10 (l.356); the newest SE update is Sep26SUv2 2026-10-02 (l.362):
        # 234 days = 7 months, and May26HU..Sep26SUv2 are 6 updates; SE is supported.
        ("15.2.2562.37", DEC, BuildLag(True, 7, 6, True, 0)),
        # On 2026-03-01 Feb26SU was the newest SE update.
        ("15.2.2562.37", date(2026, 3, 1), BuildLag(True, 0, 0, True, 0)),
        # 2016 CU23 release 2022-04-20 (l.203) on 2026-03-20: Feb26SU 2026-02-10 (l.226) was
        # the newest 2016 update, 1392 days = 45 months; May22SU..Feb26SU are 23 updates.
        ("15.1.2507.6", date(2026, 3, 20), BuildLag(True, 45, 23, False, None)),
        # Only the CU (2019 CU12) is visible: at least as current as CU12's Nov23SU,
        # 2023-11-14 (l.310), 1053 days = 34 months before 2026-10-02; 0 updates for sure.
        ("15.2.1118", DEC, BuildLag(False, 34, 0, False, None)),
        # Unknown build between CU14's Apr24HU .11 and Nov24SU .13 (l.323-324): older than
        # 2024-11-12, so at least 689 days = 22 months; .13 to .48 are 14 updates after it.
        ("15.2.1544.12", DEC, BuildLag(False, 22, 14, False, None)),
        # 2019 on 2025-03-01: CU14 Nov24SUv2 2024-11-27 (l.325), CU15 released 2025-02-10
        # (l.338): 2 months and one CU behind, on a supported line.
        ("15.2.1544.14", date(2025, 3, 1), BuildLag(True, 2, 0, False, 1)),
        ("15.2.1748.10", date(2025, 3, 1), BuildLag(True, 0, 0, True, 0)),
    ],
)
def test_build_lag(build: str, day: date, want: BuildLag) -> None:
    assert build_lag(build, day) == want


def test_builds_without_a_lag() -> None:
    for build in (None, "", "not a build", "15.9.1.1", "15.0.500.1"):
        assert build_lag(build, DEC) is None, build


def test_cu_level_counts_are_lower_bounds_of_the_records_upper_bounds() -> None:
    # The record says "at most" (from the CU release), the report "at least" (from the
    # CU's newest update): the report never claims more than is certain.
    record = assess("15.2.1118", today=DEC).patch_lag
    assert record is not None
    assert not record.exact
    got = build_lag("15.2.1118", DEC)
    assert got is not None
    assert got.months < int(record.days_behind // DAYS_PER_MONTH)
    assert got.sus == 0 < record.sus_behind


def test_every_known_build_agrees_with_its_record_patch_lag() -> None:
    # With a build table that knows nothing after the day, a known build's lag is exactly
    # what `assess` (and so every scan record) says.
    day = max(r.release_date for r in default().rows)
    for row in default().rows:
        lag = assess(row.build, today=day).patch_lag
        got = build_lag(str(row.build), day)
        if lag is None:
            assert got is None, row.build
            continue
        assert got is not None, row.build
        assert got.exact, row.build
        assert got.months == int(lag.days_behind // DAYS_PER_MONTH), row.build
        assert got.sus == lag.sus_behind, row.build
        assert (got.cu_receives_sus, got.cus_behind) == (lag.cu_receives_sus, lag.cus_behind)


def test_catalogue_as_of_a_day() -> None:
    view = catalogue_as_of(date(2026, 3, 1))
    assert max(r.release_date for r in view.rows) == date(2026, 2, 10)
    assert view.latest_rows["SE"].su == "Feb26SU"
    assert [cu.name for cu in view.cus["SE"]] == ["RTM"]
    assert view.cves == ()
    assert len(catalogue_as_of(DEC).rows) == len(default().rows)


def test_weighted_median() -> None:
    assert weighted_median([]) is None
    assert weighted_median([(5, 0)]) is None
    assert weighted_median([(7, 1)]) == 7
    assert weighted_median([(0, 3), (7, 1), (53, 2)]) == 3.5  # 0 0 0 7 53 53
    assert weighted_median([(21, 2), (45, 3)]) == 45  # 21 21 45 45 45
    assert weighted_median([(45, 1), (21, 1)]) == 33


def test_summarise_a_group() -> None:
    cells = [
        ("15.2.2562.53", 2),  # current SE
        ("15.2.2562.37", 1),  # 7 months, 6 updates
        ("15.2.1118", 1),  # CU-level 2019 CU12: 34 months, 0 updates, no longer updated
        (None, 3),  # hidden
        ("15.9.1.1", 1),  # no such line
        ("15.1.2507.6", 0),  # an empty cell changes nothing
    ]
    got = summarise(cells, DEC, Thresholds(sus=1, months=12))
    assert (got.exchange, got.placed, got.exact, got.unknown) == (8, 4, 3, 4)
    assert got.median_months == 3.5  # 0 0 7 34
    assert (got.behind_sus, got.behind_months, got.cu_no_sus) == (1, 1, 1)
    assert (got.supported, got.behind_cu) == (3, 0)
    j = got.to_json()
    assert (j["months_0"], j["months_7_12"], j["months_25_36"], j["months_unknown"]) == (2, 1, 1, 4)
    assert (j["behind_sus_pct"], j["cu_no_sus_pct"], j["behind_cu_pct"]) == (25.0, 25.0, 0.0)
    assert j["behind_months_min"] == 12
    empty = summarise([], DEC).to_json()
    assert (empty["median_months_behind"], empty["behind_sus_pct"]) == (None, None)


def test_bucket_fields() -> None:
    assert [bucket_field(b) for b in ("0", "1-3", ">36", "unknown")] == [
        "months_0",
        "months_1_3",
        "months_over_36",
        "months_unknown",
    ]
