"""`assess` works out each update's code-fix state once per build and shares the verdicts
that read alike (and those no build changes) between CVEs: every verdict must still be the
one the CVE's own rule gives, worked out alone."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from exwatch.assess import _SETTLED, _place, _settled_verdict, _verdict, assess
from exwatch.knowledge.catalogue import Catalogue, ProductRule, default
from exwatch.model import Build, CveResult


def _alone(cat: Catalogue, build: str) -> dict[str, CveResult]:
    """Each CVE's verdict worked out by itself: nothing kept between CVEs."""
    b = Build.parse(build)
    product = cat.product_for(b)
    assert product is not None
    cu, beyond = _place(cat, b, product) if product.in_build_table else (None, False)
    groups = cat.code_groups.get(product.id, {})
    return {
        c.id: _settled_verdict(c, product) or _verdict(c, product, cu, b, beyond, cat, groups, {})
        for c in cat.cves
    }


def _builds(cat: Catalogue, product: str | None = None) -> list[str]:
    """Every catalogued build of a product line, its CU level, and unknown neighbours."""
    out: set[str] = set()
    for r in cat.rows:
        if product is not None and r.product != product:
            continue
        b = r.build
        out.update({str(b), f"{b.major}.{b.minor}.{b.build}", f"{b.major}.{b.minor}.{b.build + 1}"})
        if b.revision is not None:
            out.update(f"{b.major}.{b.minor}.{b.build}.{b.revision + d}" for d in (1, 500))
            if b.revision:
                out.add(f"{b.major}.{b.minor}.{b.build}.{b.revision - 1}")
    return sorted(out)


def test_every_catalogued_build_as_each_cve_alone() -> None:
    cat = default()
    builds = _builds(cat)
    assert len(builds) > 1000
    for build in builds:
        assert assess(build).cves == _alone(cat, build), build


# Pairs of CVEs of one update whose 2019 rules read the same in the shipped catalogue; the
# second is changed in one field, so sharing by anything less than the whole rule shows.
MARCH = ("CVE-2021-26855", "CVE-2021-26857")  # fixed in RTM to CU8, shipped from CU9
UNLISTED = ("CVE-2021-26412", "CVE-2021-26854")  # fixed in CU7 and CU8, RTM to CU6 unlisted


def _rule(cat: Catalogue, cve_id: str) -> ProductRule:
    return cat.cve(cve_id).products["2019"]


def _with(cat: Catalogue, rules: dict[str, ProductRule]) -> Catalogue:
    cves = tuple(
        dataclasses.replace(c, products={**c.products, "2019": rules[c.id]}) if c.id in rules else c
        for c in cat.cves
    )
    return dataclasses.replace(cat, cves=cves)


def _variant(change: str) -> tuple[Catalogue, str, str]:
    """A catalogue where the pair's two rules differ in `change` alone, and the pair."""
    cat = default()
    if change in ("never_fixed", "unlisted"):
        # Both lose CU6 from their unlisted CUs; then the second has it as never fixed, or
        # keeps it unlisted: the two rules differ in that one field.
        same, changed = UNLISTED
        base = dataclasses.replace(_rule(cat, same), unlisted=_rule(cat, same).unlisted - {"CU6"})
        other = dataclasses.replace(_rule(cat, changed), unlisted=base.unlisted)
        if change == "never_fixed":
            other = dataclasses.replace(other, never_fixed=frozenset({"CU6"}))
        else:
            other = dataclasses.replace(other, unlisted=_rule(cat, changed).unlisted)
        return _with(cat, {same: base, changed: other}), same, changed
    same, changed = MARCH
    rule = _rule(cat, changed)
    edits: dict[str, Any]
    if change == "shipped_from":
        edits = {"shipped_from": "CU8"}
    elif change == "fixed_in":
        cu8 = cat.cu_named("2019", "CU8")
        assert cu8 is not None
        later = [r for r in cu8.rows if r.build > rule.fixed_in["CU8"].build]
        edits = {"fixed_in": {**rule.fixed_in, "CU8": later[0]}}
    elif change == "status":
        edits = {"status": "unassessed", "reason": "changed for the test"}
    else:
        assert change == "source"
        edits = {"source": "changed-source"}
    return _with(cat, {changed: dataclasses.replace(rule, **edits)}), same, changed


@pytest.mark.parametrize(
    "change", ["shipped_from", "never_fixed", "unlisted", "fixed_in", "status", "source"]
)
def test_a_rule_changed_in_one_field_is_read_on_its_own(change: str) -> None:
    cat, same, changed = _variant(change)
    differs = 0
    for build in _builds(cat, "2019"):
        got = assess(build, catalogue=cat).cves
        assert got == _alone(cat, build), build
        differs += got[changed] != got[same]
    assert differs, "the two rules must give different verdicts, reasons or bases somewhere"


def test_each_catalogue_keeps_its_own_settled_verdicts() -> None:
    shipped = default()
    cat, _, changed = _variant("status")
    build = "15.2.792.10"  # 2019 CU8 with the March 2021 SU
    assert assess(build, catalogue=shipped).cves[changed].reason != "changed for the test"
    assert assess(build, catalogue=cat).cves[changed].reason == "changed for the test"
    assert assess(build, catalogue=shipped).cves[changed] == _alone(shipped, build)[changed]


def test_settled_verdicts_are_kept_for_a_few_catalogues_only() -> None:
    for _ in range(12):
        cat, _, _ = _variant("status")
        assess("15.2.792.10", catalogue=cat)
        assert len(_SETTLED) <= 8
