"""Patch lag (pure, from builds.csv) and the record helpers report views use (exposure.py)."""

from __future__ import annotations

from datetime import date

import pytest

from exwatch.assess import assess
from exwatch.exposure import (
    MONTH_BUCKETS,
    cve_facts,
    kev_cves,
    kev_hits,
    month_bucket,
    months_behind,
    patch_lag_of,
)
from exwatch.knowledge.catalogue import default

TODAY = date(2026, 12, 1)
# The newest update in builds.csv: the September 2026 "version 2", released 2026-10-02.
NEWEST = date(2026, 10, 2)


def lag(build: str, today: date = TODAY) -> dict[str, object]:
    found = assess(build, today=today).patch_lag
    assert found is not None
    return found.to_json()


def test_known_build_of_an_old_cu() -> None:
    got = lag("15.1.2176.9")  # 2016 CU19 Mar21SU; CU19 then got Apr21SU and May21SU
    assert got == {
        "exact": True,
        "build_date": "2021-03-02",
        "cu_latest": "15.1.2176.14",
        "cu_latest_su": "May21SU",
        "sus_behind": 2,
        "cu_receives_sus": False,
        "latest": "15.1.2507.75",
        "latest_su": "Sep26SUv2",
        "latest_cu": "CU23",
        "days_behind": (NEWEST - date(2021, 3, 2)).days,
        "days_behind_any": (NEWEST - date(2021, 3, 2)).days,
        "cus_behind": None,  # 2016 is out of support: no "newest CU" to move to
    }


def test_newest_se_build_is_current() -> None:
    got = lag("15.2.2562.53")
    assert (got["exact"], got["sus_behind"], got["days_behind"], got["cus_behind"]) == (
        True,
        0,
        0,
        0,
    )
    assert got["cu_receives_sus"] is True


def test_older_se_build_counts_updates_and_days() -> None:
    got = lag("15.2.2562.37")  # Feb26SU; then May26HU, Jun26SU, Jul26SU, Aug26SU, Sep26SU, v2
    assert got["sus_behind"] == 6
    assert got["days_behind"] == (NEWEST - date(2026, 2, 10)).days
    assert got["latest_su"] == "Sep26SUv2"


def test_supported_line_counts_cus_behind_on_its_support_dates() -> None:
    # 2019 CU12 judged while 2019 was still supported: CU13, CU14, CU15 came later.
    got = lag("15.2.1118.7", today=date(2025, 1, 1))
    assert got["cus_behind"] == 3
    assert got["cu_receives_sus"] is False  # CU12 did not get the line's newest update
    newest_cu = lag("15.2.1748.53", today=date(2025, 1, 1))
    assert (newest_cu["cus_behind"], newest_cu["cu_receives_sus"]) == (0, True)
    # After the end of support (2025-10-14) the newest CU no longer counts as receiving
    # public updates (later ones are ESU-only).
    assert lag("15.2.1748.53")["cu_receives_sus"] is False


def test_cu_level_build_is_an_upper_bound() -> None:
    got = lag("15.2.1544")  # 2019 CU14 seen only as its CU
    assert got["exact"] is False
    cu14 = default().cu_named("2019", "CU14")
    assert cu14 is not None
    assert got["build_date"] == cu14.release.release_date.isoformat()
    assert got["sus_behind"] == len({r.su for r in cu14.rows[1:]})


def test_unknown_builds() -> None:
    beyond = lag("15.2.2562.999")  # newer than every known SE build
    assert (beyond["exact"], beyond["sus_behind"], beyond["days_behind"]) == (False, 0, 0)
    between = lag("15.1.2176.10")  # between Mar21SU (.9) and Apr21SU (.12)
    assert between["exact"] is False
    assert between["build_date"] == "2021-03-02"
    assert between["sus_behind"] == 2
    assert assess("15.9.1.1").patch_lag is None  # no such product line
    assert assess("15.0.500.1").patch_lag is None  # older than every known 2013 build


def test_exchange_2010() -> None:
    got = lag("14.3.496.0")  # RU30; RU31 and RU32 came later
    assert (got["sus_behind"], got["latest_su"], got["cus_behind"]) == (2, "RU32", None)
    assert got["days_behind"] == (date(2021, 3, 2) - date(2020, 2, 11)).days
    assert got["days_behind_any"] == (NEWEST - date(2020, 2, 11)).days


# ---------------------------------------------------------------- exposure.py


def record(build: str | None, *, with_lag: bool = True) -> dict[str, object]:
    """A record shaped like the scanner's (scan/host.py)."""
    if build is None:
        return {"ip": "192.0.2.1", "exchange": None, "cves": {}}
    a = assess(build, today=TODAY).to_json()
    exchange = {"build": build, "patch_lag": a["patch_lag"] if with_lag else None}
    return {"ip": "192.0.2.1", "exchange": exchange, "cves": a["cves"]}


def test_kev_list_and_hits() -> None:
    kev = kev_cves()
    assert "CVE-2021-33766" in kev
    assert "CVE-2021-26855" in kev
    assert "CVE-2021-28480" not in kev
    facts = {f["cve"]: f for f in cve_facts()}
    assert facts["CVE-2021-33766"]["kev_added"] == "2022-01-18"
    assert facts["CVE-2021-26855"]["pre_auth"] is True
    assert facts["CVE-2021-26855"]["severity"] == "critical"
    hits = kev_hits(record("15.1.2176.9"))  # Mar21SU: ProxyLogon fixed, ProxyShell not
    assert "CVE-2021-34473" in hits
    assert "CVE-2021-33766" in hits
    assert "CVE-2021-26855" not in hits
    assert kev_hits(record("15.2.2562.53")) == []
    assert kev_hits(record(None)) == []


def test_months_behind_from_a_record_with_or_without_stored_lag() -> None:
    old = record("15.1.2176.9")
    months = months_behind(old)
    assert months == int((NEWEST - date(2021, 3, 2)).days // 30.4375) == 67
    assert months_behind(record("15.1.2176.9", with_lag=False)) == months
    assert patch_lag_of(record("15.1.2176.9", with_lag=False)) == old["exchange"]["patch_lag"]  # type: ignore[index]
    assert months_behind(record("15.2.2562.53")) == 0
    assert months_behind(record(None)) is None
    assert months_behind({"exchange": {"build": "garbage"}, "cves": {}}) is None
    # against any line: a 2010 server is measured against the newest Exchange update
    r2010 = record("14.3.513.0")
    assert months_behind(r2010) == 0  # RU32 is 2010's last update
    assert months_behind(r2010, reference="any") == int((NEWEST - date(2021, 3, 2)).days // 30.4375)


@pytest.mark.parametrize(
    ("months", "bucket"),
    [
        (None, "unknown"),
        (0, "0"),
        (1, "1-3"),
        (3, "1-3"),
        (4, "4-6"),
        (12, "7-12"),
        (13, "13-24"),
        (36, "25-36"),
        (37, ">36"),
        (500, ">36"),
    ],
)
def test_month_buckets(months: int | None, bucket: str) -> None:
    assert month_bucket(months) == bucket
    assert bucket == "unknown" or bucket in dict(MONTH_BUCKETS)
