"""Pure classification of an Exchange build against the knowledge base.

`assess(build)` places the build in its product line and cumulative update (CU), names its
security update (SU) when the exact build is known, and gives a verdict per CVE:

- 4-part build: compared with the first fixed build of its CU -> vulnerable / patched.
- 3-part build (CU level, as OWA paths show on 2013 and later): patched when the CU shipped
  with the fix, vulnerable when the CU never got one, otherwise undetermined.
- unknown builds are placed by their CU; a build newer than every known build of its CU
  counts as at least as patched as the newest known SU, and the placement says so.
No I/O beyond reading the shipped data once; the clock is read only for end-of-life.
"""

from __future__ import annotations

from datetime import date

from exwatch.knowledge import catalogue as kb
from exwatch.model import Assessment, Build, CveResult, Verdict


def _place(
    cat: kb.Catalogue, b: Build, product: kb.Product
) -> tuple[kb.CumulativeUpdate | None, bool]:
    """Return (CU, beyond) where beyond means: newer than every known build of that CU."""
    candidate: kb.CumulativeUpdate | None = None
    for cu in cat.cus.get(product.id, ()):
        if cu.start_key <= b.cu_key:
            candidate = cu
    if candidate is None:
        return None, False
    if b.cu_key in candidate.keys:
        beyond = b.revision is not None and b.as_tuple() > candidate.newest.build.as_tuple()
        return candidate, beyond
    # An unknown third part: only ever newer than the candidate's known builds.
    return candidate, b.cu_key > max(candidate.keys)


def _verdict(
    cve: kb.Cve,
    product: kb.Product,
    cu: kb.CumulativeUpdate | None,
    b: Build,
    beyond: bool,
    cat: kb.Catalogue,
) -> CveResult:
    rule = cve.products.get(product.id)
    if rule is None:
        return CveResult(Verdict.UNDETERMINED, f"the catalogue does not state {product.name}")
    if rule.status == "not-affected":
        return CveResult(Verdict.NOT_AFFECTED, rule.reason)
    if rule.status == "unassessed":
        return CveResult(Verdict.UNDETERMINED, f"{product.name} {rule.reason}")
    if cu is None:
        return CveResult(
            Verdict.UNDETERMINED, f"{b} is older than every known {product.name} build"
        )
    names = [c.name for c in cat.cus[product.id]]
    label = f"{product.name} {cu.name}"
    if rule.shipped_fixed_from is not None and cu.index >= names.index(rule.shipped_fixed_from):
        return CveResult(Verdict.PATCHED, f"{label} shipped with the fix ({cve.fixed_by})")
    newest = cu.newest.build
    if cu.name in rule.fixed_in:
        fix = rule.fixed_in[cu.name]
        if beyond:
            if newest.as_tuple() >= fix.as_tuple():
                return CveResult(
                    Verdict.PATCHED,
                    f"newer than every known {label} build; the fix is in {fix}, which is older",
                )
            return CveResult(Verdict.UNDETERMINED, f"unknown {label} build; the fix is {fix}")
        if b.revision is None:
            if b.cu_key > fix.cu_key:
                return CveResult(Verdict.PATCHED, f"{b} is later than the fixed build {fix}")
            if b.cu_key < fix.cu_key:
                return CveResult(Verdict.VULNERABLE, f"{b} is older than the fixed build {fix}")
            return CveResult(
                Verdict.UNDETERMINED,
                f"only the CU is visible; {label} is fixed from security update build {fix} on",
            )
        if b.as_tuple() >= fix.as_tuple():
            return CveResult(Verdict.PATCHED, f"{b} >= first fixed build {fix} of {label}")
        return CveResult(Verdict.VULNERABLE, f"{b} < first fixed build {fix} of {label}")
    if cu.name in rule.undecidable_from:
        start = rule.undecidable_from[cu.name]
        why = (
            f"{cve.fixed_by}: the fix is configuration (Extended Protection), "
            "which a version number cannot show"
        )
        if start is None or beyond or b.revision is None or b.as_tuple() >= start.as_tuple():
            return CveResult(Verdict.UNDETERMINED, why)
        return CveResult(
            Verdict.VULNERABLE, f"{b} < {start}: {label} cannot enable the fix before that build"
        )
    if cu.name in rule.never_fixed:
        if beyond:
            return CveResult(
                Verdict.UNDETERMINED,
                f"unknown build newer than every known {label} build; that CU never got a fix",
            )
        return CveResult(Verdict.VULNERABLE, f"{label} never received a fix")
    return CveResult(Verdict.UNDETERMINED, f"the catalogue does not cover {label}")


def assess(
    build: str | Build, *, catalogue: kb.Catalogue | None = None, today: date | None = None
) -> Assessment:
    """Classify one build; raises BuildParseError for a string that is not a build."""
    cat = kb.default() if catalogue is None else catalogue
    b = build if isinstance(build, Build) else Build.parse(build)
    product = cat.product_for(b)
    if product is None:
        return Assessment(
            build=b,
            product_id=None,
            product=None,
            cu=None,
            su=None,
            known=False,
            eol=None,
            end_of_support=None,
            release_date=None,
            placement=f"{b.major}.{b.minor} is not a known Exchange product line",
            cves={c.id: CveResult(Verdict.UNDETERMINED, "unknown product line") for c in cat.cves},
        )
    on = date.today() if today is None else today
    eol = product.end_of_support is not None and product.end_of_support <= on
    cu, beyond = _place(cat, b, product) if product.in_build_table else (None, False)
    row = cat.by_build.get(b.as_tuple()) if b.revision is not None else None
    if row is not None:
        placement = "known build"
        release = row.release_date
    elif cu is None:
        placement = (
            f"{product.name} is not in the build table"
            if not product.in_build_table
            else f"older than every known {product.name} build"
        )
        release = None
    elif b.revision is None and not beyond:
        placement = f"CU level only: {product.name} {cu.name}"
        release = cu.release.release_date
    elif beyond:
        placement = (
            f"unknown build, newer than every known {product.name} {cu.name} build "
            f"(newest known {cu.newest.build}); counted as at least as patched"
        )
        release = None
    else:
        older = [r for r in cu.rows if r.build.as_tuple() < b.as_tuple()]
        after = older[-1] if older else cu.release
        what = after.su or "CU release"
        placement = f"unknown build of {product.name} {cu.name}, after {after.build} ({what})"
        release = None
    return Assessment(
        build=b,
        product_id=product.id,
        product=product.name,
        cu=None if cu is None or (beyond and b.cu_key not in cu.keys) else cu.name,
        su=None if row is None else row.su,
        known=row is not None,
        eol=eol,
        end_of_support=product.end_of_support,
        release_date=release,
        placement=placement,
        cves={c.id: _verdict(c, product, cu, b, beyond, cat) for c in cat.cves},
    )


__all__ = ["assess"]
