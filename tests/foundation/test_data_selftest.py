"""Every shipped data file checks its own examples; a broken copy must fail the check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exwatch.knowledge import catalogue as kb
from exwatch.knowledge.consistency import selftest
from exwatch.selftest import run_all

DATA_FILES = ("sources.yaml", "products.yaml", "builds.csv", "cves.yaml")


def test_every_data_file_passes_its_selftest() -> None:
    results = run_all()
    assert results
    for res in results:
        assert res.problems == [], res.name
        assert res.examples > 0, res.name


def test_catalogue_covers_the_required_cves() -> None:
    ids = {c.id for c in kb.default().cves}
    required = {
        "CVE-2020-0688",
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
        "CVE-2021-42321",
        "CVE-2022-41040",
        "CVE-2022-41082",
        "CVE-2022-41080",
        "CVE-2023-21529",
        "CVE-2024-21410",
        "CVE-2025-53786",
        "CVE-2026-42897",
        "CVE-2026-96940",
    }
    assert required <= ids
    assert len(ids) >= 130


def test_kev_facts_named_by_the_issue() -> None:
    cat = kb.default()
    assert str(cat.cve("CVE-2021-33766").kev_added) == "2022-01-18"
    assert str(cat.cve("CVE-2023-21529").kev_added) == "2026-04-13"
    assert str(cat.cve("CVE-2020-0688").kev_added) == "2021-11-03"
    assert cat.cve("CVE-2025-53786").kev_added is None
    assert all(cat.cve(c).exploited for c in cat.kev_cves())


def test_build_table_spans_2010_sp3_to_se() -> None:
    cat = kb.default()
    assert set(cat.cus) == {"2010", "2013", "2016", "2019", "SE"}
    assert [c.name for c in cat.cus["2016"]][:2] == ["RTM", "CU1"]
    assert cat.cus["2016"][-1].name == "CU23"
    assert cat.cus["2019"][-1].name == "CU15"
    assert any(r.su == "RU32" for r in cat.cus["2010"][0].rows)
    # the newest sourced update: "Version 2" of the September 2026 SU, 2 October 2026
    latest = cat.latest_rows
    assert {p: (str(r.build), r.su) for p, r in latest.items() if p != "2010"} == {
        "2013": ("15.0.1497.48", "Mar23SU"),
        "2016": ("15.1.2507.75", "Sep26SUv2"),
        "2019": ("15.2.1748.53", "Sep26SUv2"),
        "SE": ("15.2.2562.53", "Sep26SUv2"),
    }


def test_every_source_id_resolves_to_a_place() -> None:
    cat = kb.default()
    assert cat.source_ref("cvelist", "CVE-2021-34473") == (
        "CVEProject/cvelistV5:cves/2021/34xxx/CVE-2021-34473.json"
    )
    assert cat.source_ref("msrc", "CVE-2020-0688").endswith("/CVE-2020-0688")
    for cve in cat.cves:
        for sid in (*cve.sources, cve.fix_source):
            assert "{" not in cat.source_ref(sid, cve.id), (cve.id, sid)


def _copy(tmp_path: Path) -> Path:
    for name in DATA_FILES:
        shutil.copy(kb.DATA_DIR / name, tmp_path / name)
    return tmp_path


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture drifted from {path.name}: {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "old", "new", "expect"),
    [
        # an update named in cves.yaml that builds.csv does not have
        (
            "cves.yaml",
            "    fixed_by: Feb26SU\n",
            "    fixed_by: Jan26SU\n",
            "fixed_by Jan26SU has no build in builds.csv",
        ),
        # an SE build of an update left out: the newest SE CU before it lacks it
        (
            "builds.csv",
            "SE,RTM,Jun26SU,15.2.2562.43,2026-06-09,righel,\n",
            "",
            "no SE build of Jun26SU in builds.csv",
        ),
        # the newest 2019 CU's build of an update left out while an older CU has one
        (
            "builds.csv",
            "2019,CU15,Jun26SU,15.2.1748.46,2026-06-09,righel,ESU-only for 2016/2019\n",
            "",
            "2019 CU15 (newest CU before Jun26SU) has no Jun26SU build",
        ),
        # a build row whose source id is not registered
        (
            "builds.csv",
            "2016,CU23,Feb26SU,15.1.2507.66,2026-02-10,css-exchange+ms-docs,",
            "2016,CU23,Feb26SU,15.1.2507.66,2026-02-10,css-exchange+somewhere,",
            "unknown source id 'somewhere'",
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
        # a CVE in KEV that is not marked exploited
        (
            "cves.yaml",
            "    kev: 2022-01-18\n    exploited: true\n",
            "    kev: 2022-01-18\n",
            "in KEV but not marked exploited",
        ),
        # a vector that is not CVSS 3.1
        (
            "cves.yaml",
            "vector: AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N\n",
            "vector: AV:N/AC:L/Au:N/C:P/I:P/A:P\n",
            "not a CVSS 3.1 base vector",
        ),
        # a product example placed in the wrong product
        (
            "products.yaml",
            'match: ["15.2.2562.17", "15.2.2562"]',
            'match: ["15.2.1544.4"]',
            "should be SE",
        ),
        # a source nothing uses
        (
            "sources.yaml",
            "sources:\n",
            "sources:\n  unused-source:\n    title: t\n    where: w\n",
            "unused-source is not used",
        ),
    ],
)
def test_selftest_catches_broken_data(
    tmp_path: Path, file: str, old: str, new: str, expect: str
) -> None:
    d = _copy(tmp_path)
    _replace(d / file, old, new)
    res = selftest(d)
    assert any(expect in p for p in res.problems), res.problems


def test_the_unbroken_copy_passes(tmp_path: Path) -> None:
    res = selftest(_copy(tmp_path))
    assert res.problems == []
    assert res.examples > 1000


def test_structural_error_is_reported_not_raised(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "builds.csv").write_text("product,cu\n2016,CU1\n", encoding="utf-8")
    res = selftest(d)
    assert res.problems
    assert "header" in res.problems[0]
