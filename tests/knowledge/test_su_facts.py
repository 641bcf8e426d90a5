"""Builds of every security update judged against published SU -> CVE facts.

Two independent statements of the facts are checked here, not the catalogue against itself:

- HC_TABLE: which update fixes which CVE on which product line, as HealthChecker states it
  (source id `hc-cve-table`, microsoft/CSS-Exchange
  Diagnostics/HealthChecker/Analyzer/Security/Invoke-AnalyzerSecurityCveCheck.ps1).  For
  each update, the first and the last CU that received it are sampled: the update's build
  must be patched and the build before it in the same CU vulnerable.
- RECORD_FIXED_BUILDS: the first fixed builds ("lessThan" versions) that the CVE records
  give (source id `cvelist`, CVEProject/cvelistV5).  Each is patched; one revision lower
  is vulnerable.

Where the sources disagree, the catalogue follows the CVE record / MSRC and the difference
is listed below with its reason, so a change in either direction fails a test.
"""

from __future__ import annotations

import pytest

from exwatch.assess import assess
from exwatch.knowledge.catalogue import default
from exwatch.model import Build, Verdict

L131619 = ("2013", "2016", "2019")
L1619 = ("2016", "2019")
L1619SE = ("2016", "2019", "SE")

# [hc-cve-table] update -> ((CVEs, product lines), ...) for 2020 and later.
HC_TABLE: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = {
    "Feb20SU": ((("CVE-2020-0688", "CVE-2020-0692"), L131619),),
    "Mar20SU": ((("CVE-2020-0903",), L1619),),
    "Sep20SU": ((("CVE-2020-16875",), L1619),),
    "Oct20SU": ((("CVE-2020-16969",), L131619),),
    "Nov20SU": ((("CVE-2020-17083", "CVE-2020-17084", "CVE-2020-17085"), L131619),),
    "Dec20SU": (
        (("CVE-2020-17117", "CVE-2020-17132", "CVE-2020-17142", "CVE-2020-17143"), L131619),
        (("CVE-2020-17141",), L1619),
    ),
    "Feb21SU": ((("CVE-2021-24085",), L1619),),
    "Mar21SU": (
        (
            (
                "CVE-2021-26855",
                "CVE-2021-26857",
                "CVE-2021-26858",
                "CVE-2021-27065",
                "CVE-2021-26412",
                "CVE-2021-27078",
                "CVE-2021-26854",
            ),
            L131619,
        ),
    ),
    "Apr21SU": (
        (("CVE-2021-28480", "CVE-2021-28481", "CVE-2021-28482", "CVE-2021-28483"), L131619),
    ),
    "May21SU": (
        (("CVE-2021-31195", "CVE-2021-31198", "CVE-2021-31207", "CVE-2021-31209"), L131619),
    ),
    "Jul21SU": ((("CVE-2021-31206", "CVE-2021-31196", "CVE-2021-33768"), L131619),),
    "Oct21SU": (
        (("CVE-2021-26427",), L131619),
        (("CVE-2021-41350", "CVE-2021-41348", "CVE-2021-34453"), L1619),
    ),
    "Nov21SU": (
        (("CVE-2021-42305", "CVE-2021-41349"), L131619),
        (("CVE-2021-42321",), L1619),
    ),
    "Jan22SU": ((("CVE-2022-21855", "CVE-2022-21846", "CVE-2022-21969"), L131619),),
    "Mar22SU": ((("CVE-2022-23277",), L131619), (("CVE-2022-24463",), L1619)),
    "Aug22SU": ((("CVE-2022-34692",), L1619),),
    "Nov22SU": (
        (
            (
                "CVE-2022-41040",
                "CVE-2022-41082",
                "CVE-2022-41079",
                "CVE-2022-41078",
                "CVE-2022-41080",
            ),
            L131619,
        ),
        (("CVE-2022-41123",), L1619),
    ),
    "Jan23SU": (
        (("CVE-2023-21762",), L131619),
        (("CVE-2023-21745", "CVE-2023-21761", "CVE-2023-21763", "CVE-2023-21764"), L1619),
    ),
    "Feb23SU": (
        (("CVE-2023-21529", "CVE-2023-21706", "CVE-2023-21707"), L131619),
        (("CVE-2023-21710",), L1619),
    ),
    "Mar23SU": ((("CVE-2023-21707",), L131619),),
    "Jun23SU": ((("CVE-2023-28310", "CVE-2023-32031"), L1619),),
    "Aug23SU": (
        (
            (
                "CVE-2023-38181",
                "CVE-2023-38182",
                "CVE-2023-38185",
                "CVE-2023-35368",
                "CVE-2023-35388",
                "CVE-2023-36777",
                "CVE-2023-36757",
                "CVE-2023-36756",
                "CVE-2023-36745",
                "CVE-2023-36744",
            ),
            L1619,
        ),
    ),
    "Oct23SU": ((("CVE-2023-36778",), L1619),),
    "Mar24SU": ((("CVE-2024-26198",), L1619),),
    "Nov24SUv2": ((("CVE-2024-49040",), L1619),),
    "Apr25HU": ((("CVE-2025-53786",), L1619),),
    "Aug25SU": (
        (("CVE-2025-25005", "CVE-2025-25006", "CVE-2025-25007", "CVE-2025-33051"), L1619SE),
    ),
    "Oct25SU": ((("CVE-2025-59249", "CVE-2025-53782", "CVE-2025-59248"), L1619SE),),
    "Dec25SU": ((("CVE-2025-64666", "CVE-2025-64667"), L1619SE),),
    "Feb26SU": ((("CVE-2026-21527",), L1619SE),),
}

# Where HealthChecker names an earlier update than the CVE record's fixed builds [cvelist].
HC_EARLIER_THAN_RECORD = {
    # HC lists both Feb23SU and Mar23SU; the record's fixed builds are the Mar23SU ones.
    ("Feb23SU", "CVE-2023-21707"): "Mar23SU",
    # The records' fixed builds are the re-released August 2023 update (Aug23SUv2).
    **{
        ("Aug23SU", c): "Aug23SUv2"
        for c in (
            "CVE-2023-36744",
            "CVE-2023-36745",
            "CVE-2023-36756",
            "CVE-2023-36757",
            "CVE-2023-36777",
        )
    },
}
# Where HealthChecker lists a product line that Microsoft's affected list does not
# [msrc-affected]: the catalogue says not-affected there.
HC_LINE_NOT_IN_RECORD = {("CVE-2021-33768", "2013")}
# [msrc-affected] For these CVEs Microsoft's affected list names only some of the CUs that
# have a build of the update (March 2021 also brought builds for older CUs); in the others
# no source decides, and the verdict must say so rather than guess.
_MAR21_SUPPORTED = {"2013": {"CU23"}, "2016": {"CU18", "CU19"}, "2019": {"CU7", "CU8"}}
MSRC_LISTED_CUS: dict[str, dict[str, set[str]]] = {
    "CVE-2021-26855": {"2013": {"CU21", "CU22", "CU23"}},
    "CVE-2021-26858": {"2013": {"CU21", "CU22", "CU23"}},
    "CVE-2021-26412": _MAR21_SUPPORTED,
    "CVE-2021-26854": _MAR21_SUPPORTED,
    "CVE-2021-27078": _MAR21_SUPPORTED,
}
# Only hybrid deployments are affected and the fix also needs configuration: no build is
# certainly vulnerable or patched; before the fixed build the reason says "vulnerable where".
HYBRID_ONLY = {"CVE-2025-53786"}


def _cases() -> list[tuple[str, str, str]]:
    return [
        (su, cve, line)
        for su, groups in HC_TABLE.items()
        for cves, lines in groups
        for cve in cves
        for line in lines
    ]


def _samples(line: str, su: str, cve: str) -> list[tuple[str, Build, Build]]:
    """(CU, build before the update, the update's build) in the first and last CU with it
    that Microsoft lists for the CVE, and in the first CU it does not list, if any."""
    pairs, unlisted = [], []
    listed = MSRC_LISTED_CUS.get(cve, {}).get(line)
    for cu in default().cus[line]:
        row = cu.first(su)
        if row is not None:
            if listed is not None and cu.name not in listed:
                before = cu.rows[cu.rows.index(row) - 1]
                unlisted.append((cu.name, before.build, row.build))
                continue
            before = cu.rows[cu.rows.index(row) - 1]
            pairs.append((cu.name, before.build, row.build))
    assert pairs, f"builds.csv has no {su} build for Exchange {line}"
    return ([pairs[0], pairs[-1]] if len(pairs) > 1 else pairs) + unlisted[:1]


def test_every_hc_table_cve_is_catalogued() -> None:
    catalogued = {c.id for c in default().cves}
    assert {cve for _, cve, _ in _cases()} <= catalogued


@pytest.mark.parametrize(("su", "cve", "line"), _cases(), ids=["-".join(c) for c in _cases()])
def test_update_build_against_hc_table(su: str, cve: str, line: str) -> None:
    listed = MSRC_LISTED_CUS.get(cve, {}).get(line)
    for cu, before, fixed in _samples(line, su, cve):
        got_before = assess(before).cves[cve]
        got_fixed = assess(fixed).cves[cve]
        if (cve, line) in HC_LINE_NOT_IN_RECORD:
            assert got_fixed.verdict is Verdict.NOT_AFFECTED
            assert "[msrc-affected]" in got_fixed.basis
            continue
        if listed is not None and cu not in listed:
            assert got_before.verdict is Verdict.UNDETERMINED, (before, got_before)
            assert got_fixed.verdict is Verdict.UNDETERMINED, (fixed, got_fixed)
            assert "does not list" in got_fixed.reason
            continue
        if cve in HYBRID_ONLY:
            assert got_before.verdict is got_fixed.verdict is Verdict.UNDETERMINED
            assert "vulnerable where used in hybrid deployments" in got_before.reason
            assert f"({su})" in got_fixed.basis
            assert str(fixed) in got_fixed.basis
            continue
        assert got_before.verdict is Verdict.VULNERABLE, (before, got_before)
        later = HC_EARLIER_THAN_RECORD.get((su, cve))
        if later is not None:
            assert default().cve(cve).fixed_by == later
            assert got_fixed.verdict is Verdict.VULNERABLE, (fixed, got_fixed)
            continue
        assert got_fixed.verdict is Verdict.PATCHED, (fixed, got_fixed)
        assert f"({su})" in got_fixed.basis
        assert str(fixed) in got_fixed.basis


# [cvelist] first fixed builds per CVE record (the records' "lessThan" versions).
RECORD_FIXED_BUILDS = {
    "CVE-2021-26854": "15.0.1497.12 15.1.2106.13 15.1.2176.9 15.2.721.13 15.2.792.10",
    "CVE-2021-28480": "15.0.1497.15 15.1.2176.12 15.1.2242.8 15.2.792.13 15.2.858.10",
    "CVE-2021-31198": "15.0.1497.18 15.1.2176.14 15.1.2242.10 15.2.792.15 15.2.858.12",
    "CVE-2021-31206": "15.0.1497.23 15.1.2242.12 15.1.2308.14 15.2.858.15 15.2.922.13",
    "CVE-2021-26427": "15.1.2375.12 15.2.986.9 15.0.1497.24 15.1.2308.15 15.2.922.14",
    # The record gives 2019 CU10 as 15.2.792.19, a typo for 15.2.922.19 (docs/knowledge.md).
    "CVE-2021-41349": "15.0.1497.26 15.1.2308.20 15.1.2375.17 15.2.986.14 15.2.922.19",
    "CVE-2022-21846": "15.1.2375.18 15.2.986.15 15.0.1497.28 15.1.2308.21 15.2.922.20",
    "CVE-2022-23277": "15.0.1497.33 15.1.2308.27 15.2.922.27 15.1.2375.24 15.2.986.22",
    "CVE-2022-34692": "15.1.2507.12 15.2.1118.12 15.2.986.29 15.1.2375.31",
    "CVE-2022-41078": "15.0.1497.44 15.1.2375.37 15.2.986.36 15.2.1118.20 15.1.2507.16",
    "CVE-2023-21745": "15.1.2507.17 15.2.1118.21 15.2.986.37",
    "CVE-2023-21762": "15.0.1497.45",
    "CVE-2023-21706": "15.2.1118.25 15.1.2507.21 15.2.986.41 15.0.1497.47",
    "CVE-2023-21707": "15.1.2507.23 15.2.1118.26 15.2.986.42 15.0.1497.48",
    "CVE-2023-28310": "15.1.2507.27 15.2.1118.30 15.2.1258.16",
    "CVE-2023-35368": "15.2.1258.23 15.1.2507.31 15.2.1118.36",
    "CVE-2023-36744": "15.2.1118.37 15.1.2507.32 15.2.1258.25",
    "CVE-2023-36778": "15.2.1258.27 15.2.1118.39 15.1.2507.34",
    "CVE-2023-36035": "15.1.2507.35 15.2.1118.40 15.2.1258.28",
    "CVE-2024-26198": "15.2.1544.9 15.2.1258.32 15.1.2507.37",
    "CVE-2024-49040": "15.2.1258.39 15.2.1544.14 15.1.2507.44",
    "CVE-2025-25005": "15.2.1544.33 15.1.2507.58 15.2.1748.36 15.2.2562.20",
    "CVE-2025-59249": "15.1.2507.61 15.2.1544.36 15.2.1748.39 15.2.2562.29",
    "CVE-2025-64666": "15.2.1748.42 15.1.2507.63 15.2.2562.35 15.2.1544.37",
    "CVE-2026-21527": "15.2.2562.37 15.1.2507.66 15.2.1748.43 15.2.1544.39",
    "CVE-2026-42897": "15.1.2507.69 15.2.1544.41 15.2.1748.46 15.2.2562.43",
    "CVE-2026-45504": "15.1.2507.71 15.2.1544.43 15.2.1748.48 15.2.2562.45",
    "CVE-2026-62910": "15.2.2562.46 15.1.2507.72 15.2.1748.49 15.2.1544.44",
    "CVE-2026-69356": "15.1.2507.73 15.2.1544.46 15.2.1748.51 15.2.2562.49",
    "CVE-2026-96940": "15.2.1544.48 15.1.2507.75 15.2.2562.53 15.2.1748.53",
}


@pytest.mark.parametrize(
    ("cve", "fixed"),
    [(c, b) for c, builds in RECORD_FIXED_BUILDS.items() for b in builds.split()],
)
def test_record_fixed_build_is_the_boundary(cve: str, fixed: str) -> None:
    b = Build.parse(fixed)
    assert b.revision is not None
    below = Build(b.major, b.minor, b.build, b.revision - 1)
    got = assess(b).cves[cve]
    assert got.verdict is Verdict.PATCHED, (fixed, got)
    assert got.basis.startswith(f"fixed in {fixed} (")
    assert got.basis.endswith("]")
    assert assess(below).cves[cve].verdict is Verdict.VULNERABLE, str(below)


# Exchange 2010 SP3 rollups that carried fixes after 2020 [msrc-affected, cvelist]:
# (CVE, the rollup's build, the rollup before it).
ROLLUP_FIXES = [
    ("CVE-2020-0688", "14.3.496.0", "14.3.468.0"),  # RU30, February 2020
    ("CVE-2020-17144", "14.3.509.0", "14.3.496.0"),  # RU31, December 2020
    ("CVE-2021-26857", "14.3.513.0", "14.3.509.0"),  # RU32, March 2021
]


@pytest.mark.parametrize(("cve", "fixed", "before"), ROLLUP_FIXES)
def test_exchange_2010_rollups(cve: str, fixed: str, before: str) -> None:
    assert assess(fixed).cves[cve].verdict is Verdict.PATCHED
    assert assess(before).cves[cve].verdict is Verdict.VULNERABLE
