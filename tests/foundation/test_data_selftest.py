"""Every shipped data file checks its own examples; a broken copy must fail the check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exwatch.knowledge import catalogue as kb
from exwatch.selftest import run_all


def test_every_data_file_passes_its_selftest() -> None:
    results = run_all()
    assert results
    for res in results:
        assert res.problems == [], res.name
        assert res.examples > 0, res.name


def test_catalogue_covers_the_required_cves() -> None:
    ids = {c.id for c in kb.default().cves}
    required = {
        "CVE-2021-26855",
        "CVE-2021-26857",
        "CVE-2021-26858",
        "CVE-2021-27065",
        "CVE-2021-34473",
        "CVE-2021-34523",
        "CVE-2021-31207",
        "CVE-2021-33766",
        "CVE-2021-31195",
        "CVE-2021-31196",
        "CVE-2022-41040",
        "CVE-2022-41082",
        "CVE-2023-21529",
        "CVE-2024-21410",
    }
    assert required <= ids


def test_build_table_spans_2010_sp3_to_se() -> None:
    cat = kb.default()
    assert set(cat.cus) == {"2010", "2013", "2016", "2019", "SE"}
    assert [c.name for c in cat.cus["2016"]][:2] == ["RTM", "CU1"]
    assert cat.cus["2016"][-1].name == "CU23"
    assert cat.cus["2019"][-1].name == "CU15"
    assert any(r.su == "RU32" for r in cat.cus["2010"][0].rows)


def _copy(tmp_path: Path) -> Path:
    for name in ("products.yaml", "builds.csv", "cves.yaml"):
        shutil.copy(kb.DATA_DIR / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize(
    ("file", "old", "new", "expect"),
    [
        # a wrong fixed build: example verdicts flip and the build is not a CU19 build
        ("cves.yaml", "CU19: 15.1.2176.9", "CU19: 15.1.2176.12", "expected patched"),
        # a CU left out of every group
        (
            "cves.yaml",
            "never_fixed: [RTM..CU7]\n  proxylogon_2019",
            "never_fixed: [RTM..CU6]\n  proxylogon_2019",
            "CU7 is covered 0 times",
        ),
        # a wrong example
        (
            "cves.yaml",
            "{build: 15.1.2176.2, expect: vulnerable}",
            "{build: 15.1.2176.2, expect: patched}",
            "expected patched",
        ),
        # a duplicate build row
        (
            "builds.csv",
            "2016,CU19,Mar21SU,15.1.2176.9,",
            "2016,CU19,Mar21SU,15.1.2176.4,",
            "duplicate build",
        ),
        # a product example placed in the wrong product
        (
            "products.yaml",
            'match: ["15.2.2562.17", "15.2.2562"]',
            'match: ["15.2.1544.4"]',
            "should be SE",
        ),
    ],
)
def test_selftest_catches_broken_data(
    tmp_path: Path, file: str, old: str, new: str, expect: str
) -> None:
    d = _copy(tmp_path)
    text = (d / file).read_text(encoding="utf-8")
    assert old in text, "fixture drifted from the data file"
    (d / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    res = kb.selftest(d)
    assert any(expect in p for p in res.problems), res.problems


def test_structural_error_is_reported_not_raised(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "builds.csv").write_text("product,cu\n2016,CU1\n", encoding="utf-8")
    res = kb.selftest(d)
    assert res.problems
    assert "header" in res.problems[0]
