"""Self-test of the shipped knowledge: schema, consistency, sources and every example.

Listed in `exwatch.selftest.CHECKS`.  It imports both the catalogue and `assess` (examples
are verdicts), which is why it is not part of the catalogue module: the catalogue stays a
leaf that `assess` can import without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from exwatch.assess import assess
from exwatch.errors import BuildParseError, DataError
from exwatch.knowledge.catalogue import Catalogue, Cve, default, load
from exwatch.model import Build, Verdict
from exwatch.selftest import CheckResult

_VECTOR = re.compile(r"AV:[NALP]/AC:[LH]/PR:[NLH]/UI:[NR]/S:[UC]/C:[NLH]/I:[NLH]/A:[NLH]")
_UPDATE_NAME = re.compile(r"(?:[A-Z][a-z]{2}\d{2}(?:SU|HU)(?:v\d)?|RU\d+(?:v\d)?)")
# Updates that also went to CUs long out of support, leaving gaps in the CU sequence.
_OUT_OF_BAND = frozenset({"Mar21SU"})


def _check_sources(cat: Catalogue, res: CheckResult) -> None:
    used: set[str] = set()
    for r in cat.rows:
        ids = [s for s in r.source.split("+") if s]
        if not ids:
            res.problems.append(f"builds.csv:{r.line}: no source")
        for sid in ids:
            used.add(sid)
            if sid not in cat.sources:
                res.problems.append(f"builds.csv:{r.line}: unknown source id {sid!r}")
    for cve in cat.cves:
        for sid in (*cve.sources, cve.fix_source, *cve.not_affected.values()):
            used.add(sid)
            if sid not in cat.sources:
                res.problems.append(f"cves.yaml: {cve.id}: unknown source id {sid!r}")
    for config in cat.configs.values():
        for sid in config.sources:
            used.add(sid)
            if sid not in cat.sources:
                res.problems.append(f"cves.yaml: config {config.name}: unknown source id {sid!r}")
    for ex in cat.excluded:
        used.update(ex.sources)
        for sid in ex.sources:
            if sid not in cat.sources:
                res.problems.append(f"cves.yaml: excluded {ex.id}: unknown source id {sid!r}")
    used.add("msrc-affected")  # the policy default for products a CVE does not list
    for sid, src in cat.sources.items():
        res.examples += 1
        if sid not in used:
            res.problems.append(f"sources.yaml: {sid} is not used by any entry")
        if not src.where or not src.title:
            res.problems.append(f"sources.yaml: {sid} needs a title and a where")


def _check_builds(cat: Catalogue, res: CheckResult) -> None:
    known_products = {p.id for p in cat.products if p.in_build_table}
    seen: dict[tuple[int, int, int, int], int] = {}
    last: dict[str, tuple[int, int, int, int]] = {}
    for r in cat.rows:
        where = f"builds.csv:{r.line}"
        if r.product not in known_products:
            res.problems.append(f"{where}: unknown product {r.product!r}")
            continue
        if not cat.product(r.product).matches(r.build):
            res.problems.append(f"{where}: {r.build} is not a {cat.product(r.product).name} build")
        key = r.build.as_tuple()
        if key in seen:
            res.problems.append(f"{where}: duplicate build {r.build} (also line {seen[key]})")
        seen[key] = r.line
        if r.product in last and last[r.product] >= key:
            res.problems.append(f"{where}: not sorted: {r.build} after {Build(*last[r.product])}")
        last[r.product] = key
        if r.su is not None and not _UPDATE_NAME.fullmatch(r.su):
            res.problems.append(
                f"{where}: update name {r.su!r} is not like Mar21SU, Apr25HU or RU32"
            )
        res.examples += 1
    for pid, cus in cat.cus.items():
        for cu in cus:
            releases = [r for r in cu.rows if r.su is None]
            if len(releases) != 1:
                res.problems.append(
                    f"builds.csv: {pid} {cu.name} has {len(releases)} CU release rows"
                )
            elif releases[0] is not cu.rows[0]:
                res.problems.append(
                    f"builds.csv: {pid} {cu.name}: an SU is older than the CU release"
                )
            if pid != "2010" and len(cu.keys) != 1:
                res.problems.append(f"builds.csv: {pid} {cu.name} spans several third parts")
            dates = [r.release_date for r in cu.rows]
            if dates != sorted(dates):
                res.problems.append(f"builds.csv: {pid} {cu.name}: release dates go backwards")
    for p in cat.products:
        if p.in_build_table and p.id not in cat.cus:
            res.problems.append(f"builds.csv: no builds for product {p.id}")


def _check_products(cat: Catalogue, res: CheckResult) -> None:
    ids = [p.id for p in cat.products]
    if len(set(ids)) != len(ids):
        res.problems.append("products.yaml: duplicate product ids")
    for p in cat.products:
        for text in p.match_examples:
            res.examples += 1
            found = cat.product_for(Build.parse(text))
            if found is None or found.id != p.id:
                res.problems.append(
                    f"products.yaml: {text} should be {p.id}, got {found and found.id}"
                )
        for text in p.no_match_examples:
            res.examples += 1
            if p.matches(Build.parse(text)):
                res.problems.append(f"products.yaml: {text} must not match {p.id}")


def _check_update_rows(cat: Catalogue, cve: Cve, res: CheckResult) -> None:
    """The update a CVE names must be in builds.csv for every affected product that got it."""
    where = f"cves.yaml: {cve.id}"
    fix_date = cat.update_dates.get(cve.fixed_by)
    if fix_date is None:
        if not all(p in cve.fixes for p in cve.affected):
            res.problems.append(
                f"{where}: fixed_by {cve.fixed_by} has no build in builds.csv: add its builds first"
            )
        return
    for pid in cve.affected:
        cus = cat.cus.get(pid, ())
        if pid in cve.fixes or not cus:
            continue
        before = [cu for cu in cus if cu.release.release_date <= fix_date]
        holders = [cu.index for cu in before if cu.first(cve.fixed_by) is not None]
        if not before:
            continue  # every CU of the product shipped after the update
        if not holders:
            res.problems.append(
                f"{where}: no {pid} build of {cve.fixed_by} in builds.csv, although {pid} "
                f"{before[-1].name} predates it: add the build"
            )
            continue
        if holders[-1] != before[-1].index:
            res.problems.append(
                f"{where}: {pid} {before[-1].name} (newest CU before {cve.fixed_by}) has no "
                f"{cve.fixed_by} build in builds.csv"
            )
        if cve.fixed_by not in _OUT_OF_BAND and holders != list(range(holders[0], holders[-1] + 1)):
            gaps = [cus[i].name for i in range(holders[0], holders[-1]) if i not in holders]
            res.problems.append(
                f"{where}: {pid} {', '.join(gaps)} lack {cve.fixed_by} between CUs that have it"
            )


def _check_cves(cat: Catalogue, res: CheckResult) -> None:
    ids = [c.id for c in cat.cves]
    if len(set(ids)) != len(ids):
        res.problems.append("cves.yaml: duplicate CVE ids")
    excluded = {e.id for e in cat.excluded}
    for cid in sorted(excluded & set(ids)):
        res.problems.append(f"cves.yaml: {cid} is both catalogued and excluded")
    product_ids = {p.id for p in cat.products}
    for cve in cat.cves:
        where = f"cves.yaml: {cve.id}"
        if not re.fullmatch(r"CVE-\d{4}-\d{4,7}", cve.id):
            res.problems.append(f"{where}: not a CVE id")
        if cve.cvss is not None and not 0.0 <= cve.cvss <= 10.0:
            res.problems.append(f"{where}: CVSS {cve.cvss} out of range")
        if cve.vector is not None and not _VECTOR.fullmatch(cve.vector):
            res.problems.append(f"{where}: not a CVSS 3.1 base vector: {cve.vector}")
        if cve.kev_added is not None and not cve.exploited:
            res.problems.append(f"{where}: in KEV but not marked exploited")
        if cve.kev_added is not None and cve.kev_added < cve.published:
            res.problems.append(f"{where}: KEV date before publication")
        if not cve.sources:
            res.problems.append(f"{where}: no sources")
        for pid in (*cve.affected, *cve.not_affected, *cve.fixes, *cve.msrc_cus):
            if pid not in product_ids:
                res.problems.append(f"{where}: unknown product {pid!r}")
        for pid, fixes in cve.fixes.items():
            for cu_name, b in fixes.items():
                row = cat.by_build.get(b.as_tuple())
                if row is None or row.product != pid or row.cu != cu_name:
                    res.problems.append(f"{where}: {b} is not a known build of {pid} {cu_name}")
        for pid, names in cve.msrc_cus.items():
            known = {c.name for c in cat.cus.get(pid, ())}
            for name in sorted(names - known):
                res.problems.append(f"{where}: msrc_cus names unknown {pid} CU {name}")
        if cve.config is not None:
            for pid, name in cve.config.on_by_default.items():
                if cat.cu_named(pid, name) is None:
                    res.problems.append(
                        f"{where}: config {cve.config.name}: unknown {pid} CU {name}"
                    )
        _check_update_rows(cat, cve, res)
        if not cve.examples:
            res.problems.append(f"{where}: no examples")
        _check_examples(cat, cve, res)


def _check_examples(cat: Catalogue, cve: Cve, res: CheckResult) -> None:
    for text, expected in cve.examples:
        res.examples += 1
        where = f"cves.yaml: {cve.id}: example {text}"
        try:
            want = Verdict(expected)
            got = assess(text, catalogue=cat).cves[cve.id]
        except (BuildParseError, ValueError) as exc:
            res.problems.append(f"{where}: {exc}")
            continue
        if got.verdict is not want:
            res.problems.append(
                f"{where} expected {want.value}, got {got.verdict.value} ({got.reason})"
            )


def selftest(data_dir: Path | None = None) -> CheckResult:
    res = CheckResult("knowledge: sources, products, builds, CVE catalogue")
    try:
        cat = default() if data_dir is None else load(data_dir)
    except DataError as exc:
        res.problems.append(str(exc))
        return res
    _check_sources(cat, res)
    _check_products(cat, res)
    _check_builds(cat, res)
    _check_cves(cat, res)
    return res


def problems(cat: Catalogue) -> Iterable[str]:
    """All problems of an already loaded catalogue (for tools that build one in memory)."""
    res = CheckResult("knowledge")
    _check_sources(cat, res)
    _check_products(cat, res)
    _check_builds(cat, res)
    _check_cves(cat, res)
    return list(res.problems)


__all__ = ["problems", "selftest"]
