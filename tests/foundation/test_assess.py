"""The assessment contract: verdicts for 4-part, 3-part and unknown builds."""

from __future__ import annotations

from datetime import date

import pytest

from exwatch import Build, Precision, Verdict, assess
from exwatch.errors import BuildParseError
from exwatch.knowledge import catalogue as kb

V, P, U, N = Verdict.VULNERABLE, Verdict.PATCHED, Verdict.UNDETERMINED, Verdict.NOT_AFFECTED


@pytest.mark.parametrize(
    ("text", "normalised", "precision"),
    [
        ("15.1.2176.9", "15.1.2176.9", Precision.SU),
        ("15.01.2176.009", "15.1.2176.9", Precision.SU),
        (" 15.02.0858.005 ", "15.2.858.5", Precision.SU),
        ("15.1.2176", "15.1.2176", Precision.CU),
    ],
)
def test_build_parsing_normalises(text: str, normalised: str, precision: Precision) -> None:
    b = Build.parse(text)
    assert str(b) == normalised
    assert b.precision is precision


@pytest.mark.parametrize(
    "bad", ["banana", "15.1", "15", "", "15.1.2176.9.1", "15.1.x.9", "1.2.3.4\n5"]
)
def test_bad_builds_raise(bad: str) -> None:
    with pytest.raises(BuildParseError):
        Build.parse(bad)


def test_known_su_build() -> None:
    a = assess("15.1.2176.9")
    assert (a.product, a.cu, a.su, a.known) == ("Exchange Server 2016", "CU19", "Mar21SU", True)
    assert a.cves["CVE-2021-26855"].verdict is P
    assert a.cves["CVE-2021-34473"].verdict is V
    assert a.release_date == date(2021, 3, 2)


def test_cu_level_build_is_undetermined_where_an_su_fixed_it() -> None:
    a = assess("15.1.2176")
    assert a.precision is Precision.CU
    assert a.su is None
    assert a.cves["CVE-2021-26855"].verdict is U
    assert "only the CU" in a.cves["CVE-2021-26855"].reason
    # 2016 CU19 never got the July 2021 SU: vulnerable even at CU level.
    assert a.cves["CVE-2021-31196"].verdict is V


def test_cu_that_shipped_fixed_is_patched_at_cu_level() -> None:
    a = assess("15.1.2308")  # 2016 CU21 shipped with the April and May 2021 fixes
    assert a.cves["CVE-2021-34473"].verdict is P
    assert a.cves["CVE-2021-31207"].verdict is P
    assert a.cves["CVE-2021-31196"].verdict is U


def test_cu_that_never_got_a_fix_is_vulnerable() -> None:
    for text in ("15.1.2106", "15.1.2106.13", "15.2.721", "15.2.721.13"):
        assert assess(text).cves["CVE-2021-34473"].verdict is V, text


def test_cu8_cu9_variants_are_both_fixed() -> None:
    for text in ("15.1.1415.8", "15.1.1415.10", "15.1.1466.13", "15.1.1466.16"):
        a = assess(text)
        assert a.su == "Mar21SU"
        assert a.cves["CVE-2021-26855"].verdict is P, text
    assert assess("15.1.1415.7").cves["CVE-2021-26855"].verdict is V


def test_unknown_newer_su_counts_as_at_least_as_patched() -> None:
    a = assess("15.1.2507.999")
    assert a.cu == "CU23"
    assert not a.known
    assert "newer than every known" in a.placement
    assert all(r.verdict is not V for r in a.cves.values())
    assert a.cves["CVE-2023-21529"].verdict is P


def test_unknown_build_between_known_sus_is_compared_numerically() -> None:
    a = assess("15.1.2176.5")
    assert not a.known
    assert "after 15.1.2176.4" in a.placement or "after 15.1.2176.2" in a.placement
    assert a.cves["CVE-2021-26855"].verdict is V


def test_extended_protection_cve_is_undetermined_on_2016() -> None:
    a = assess("15.1.2507.39")
    r = a.cves["CVE-2024-21410"]
    assert r.verdict is U
    assert "Extended Protection" in r.reason
    assert assess("15.2.1544.4").cves["CVE-2024-21410"].verdict is P


def test_exchange_2010_only_26857() -> None:
    a = assess("14.3.509.0")
    assert a.product == "Exchange Server 2010"
    assert a.cu == "SP3"
    assert a.cves["CVE-2021-26857"].verdict is V
    assert a.cves["CVE-2021-26855"].verdict is N
    assert assess("14.3.513.0").cves["CVE-2021-26857"].verdict is P
    assert assess("14.3.513.0").su == "RU32"


def test_se_is_not_eol_and_2019_is() -> None:
    se = assess("15.2.2562.17")
    assert (se.product, se.eol) == ("Exchange Server SE", False)
    cat = kb.default()
    # SE RTM shipped with every fix published before it; later CVEs need later SE updates.
    for cve_id, r in se.cves.items():
        cve = cat.cve(cve_id)
        if cve.published < date(2025, 7, 1) and cve.config is None:
            assert r.verdict is P, (cve_id, r.reason)
    assert se.cves["CVE-2025-59249"].verdict is V
    assert assess("15.2.2562.29").cves["CVE-2025-59249"].verdict is P
    assert assess("15.2.1748.10").eol is True
    assert assess("15.2.1748.10", today=date(2025, 1, 1)).eol is False


def test_unknown_product_line() -> None:
    a = assess("16.0.100.1")
    assert a.product is None
    assert a.eol is None
    assert all(r.verdict is U for r in a.cves.values())


def test_json_contract_keys() -> None:
    j = assess("15.01.2176.009").to_json()
    assert {
        "build",
        "product",
        "cu",
        "su",
        "precision",
        "eol",
        "release_date",
        "cves",
        "reasons",
        "basis",
        "patch_lag",
    } <= set(j)
    assert j["build"] == "15.1.2176.9"
    assert set(j["cves"].values()) <= {"vulnerable", "patched", "undetermined", "not-affected"}
    assert set(j["reasons"]) == set(j["cves"]) == set(j["basis"])
