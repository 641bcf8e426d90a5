"""Pure classification of an Exchange build against the knowledge base.

`assess(build)` places the build in its product line and cumulative update (CU), names its
security update (SU) when the exact build is known, gives a verdict per CVE and measures the
patch lag:

- 4-part build: compared with the first fixed build of its CU -> vulnerable / patched.
- 3-part build (CU level, as OWA paths show on 2013 and later): patched when the CU shipped
  with the fix, vulnerable when the CU never got one, otherwise undetermined.
- unknown builds are placed by their CU; a build newer than every known build of its CU
  counts as at least as patched as the newest known SU, and the placement says so.
- where the fix is also configuration (Extended Protection, AD preparation, hybrid), the
  build decides only "cannot have the fix yet"; from the fixed build on the verdict is
  undetermined unless the configuration is on by default.  Where only some deployments are
  affected (hybrid), a build without the fix is undetermined too, and the reason says so.
Every verdict carries a reason (a sentence) and a basis (the build compared with and the
source id).  No I/O beyond reading the shipped data once; the clock is read only for
end of support.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from exwatch.knowledge.catalogue import Catalogue, CumulativeUpdate, Cve, Product, default
from exwatch.model import Assessment, Build, CveResult, Verdict
from exwatch.patch_lag import patch_lag


def _place(cat: Catalogue, b: Build, product: Product) -> tuple[CumulativeUpdate | None, bool]:
    """Return (CU, beyond) where beyond means: newer than every known build of that CU."""
    candidate: CumulativeUpdate | None = None
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


_FIXED, _VULN, _UNDET = "fixed", "vulnerable", "undetermined"
_CODE_VERDICT = {_FIXED: Verdict.PATCHED, _VULN: Verdict.VULNERABLE}


def _code_state(
    cve: Cve, product: Product, cu: CumulativeUpdate, b: Build, beyond: bool, cat: Catalogue
) -> tuple[str, str, str]:
    """(state, reason, basis) of the code fix alone, before any configuration step."""
    rule = cve.products[product.id]
    su = cve.fixed_by
    label = f"{product.name} {cu.name}"
    places = cat.cu_positions[product.id]
    if rule.shipped_from is not None and cu.index >= places[rule.shipped_from]:
        return _FIXED, f"{label} shipped with the fix ({su})", f"{cu.name} shipped with {su}"
    if cu.name in rule.fixed_in:
        fix = rule.fixed_in[cu.name].build
        basis = f"fixed in {fix} ({su})"
        if beyond:
            if cu.newest.build.as_tuple() >= fix.as_tuple():
                return _FIXED, f"newer than every known {label} build; fixed in {fix}", basis
            return _UNDET, f"unknown {label} build; the fix is {fix}", basis
        if b.revision is None:
            if b.cu_key > fix.cu_key:
                return _FIXED, f"{b} is later than the fixed build {fix}", basis
            if b.cu_key < fix.cu_key:
                return _VULN, f"{b} is older than the fixed build {fix}", basis
            return _UNDET, f"only the CU is visible; {label} is fixed from {fix} ({su}) on", basis
        if b.as_tuple() >= fix.as_tuple():
            return _FIXED, f"{b} >= first fixed build {fix} of {label}", basis
        return _VULN, f"{b} < first fixed build {fix} of {label}", basis
    if cu.name in rule.unlisted:
        return (
            _UNDET,
            f"MSRC does not list {label} for this CVE; no source says whether its {su} fixes it",
            f"{cu.name} {su} not listed by MSRC",
        )
    if cu.name in rule.never_fixed:
        if beyond:
            return (
                _UNDET,
                f"unknown build newer than every known {label} build; that CU never got {su}",
                f"{cu.name} never got {su}",
            )
        return _VULN, f"{label} never received {su}", f"{cu.name} never got {su}"
    return _UNDET, f"the catalogue does not cover {label}", "not covered"


def _settled_verdict(cve: Cve, product: Product) -> CveResult | None:
    """The verdict when no build can change it (no rule for the product, not affected, not
    assessed); None when the build decides."""
    rule = cve.products.get(product.id)
    if rule is None:
        return CveResult(
            Verdict.UNDETERMINED, f"the catalogue does not state {product.name}", "not covered"
        )
    if rule.status == "not-affected":
        return CveResult(
            Verdict.NOT_AFFECTED, f"{rule.reason} [{rule.source}]", f"not affected [{rule.source}]"
        )
    if rule.status == "unassessed":
        return CveResult(Verdict.UNDETERMINED, rule.reason, "not assessed (out of support)")
    return None


# Per catalogue (held, so its id stays its own), per product id: the CVEs' settled verdicts,
# about half of every assessment, made once (a CveResult is immutable: shared safely).
_SETTLED: dict[int, tuple[Catalogue, dict[str, dict[str, CveResult]]]] = {}


def _settled(cat: Catalogue, product: Product) -> dict[str, CveResult]:
    entry = _SETTLED.get(id(cat))
    if entry is None:
        if len(_SETTLED) >= 8:  # tests build catalogues of their own
            _SETTLED.clear()
        entry = _SETTLED[id(cat)] = (cat, {})
    table = entry[1].get(product.id)
    if table is None:
        table = entry[1][product.id] = {
            c.id: found for c in cat.cves if (found := _settled_verdict(c, product)) is not None
        }
    return table


def _verdict(
    cve: Cve,
    product: Product,
    cu: CumulativeUpdate | None,
    b: Build,
    beyond: bool,
    cat: Catalogue,
    groups: dict[str, int],
    states: dict[object, Any],
) -> CveResult:
    """The verdict of a CVE whose rule for the product depends on the build (`_settled_verdict`
    is None).  `states` keeps this build's code-fix states by group (`groups`: the product's
    `code_groups`), and by group and source the verdicts of CVEs without a configuration
    step: they read alike."""
    rule = cve.products[product.id]
    if cu is None:
        return CveResult(
            Verdict.UNDETERMINED,
            f"{b} is older than every known {product.name} build",
            "build not placed",
        )
    group = groups[cve.id]
    code = states.get(group)
    if code is None:
        code = states[group] = _code_state(cve, product, cu, b, beyond, cat)
    state, reason, basis = code
    config = cve.config
    if config is None:
        alike = (group, rule.source)
        result: CveResult | None = states.get(alike)
        if result is None:
            verdict = _CODE_VERDICT.get(state, Verdict.UNDETERMINED)
            result = states[alike] = CveResult(verdict, reason, f"{basis} [{rule.source}]")
        return result
    tag = f" [{rule.source}]"
    default_cu = config.on_by_default.get(product.id)
    place = None if default_cu is None else cat.cu_positions[product.id].get(default_cu)
    if place is not None and cu.index >= place:
        return CveResult(
            Verdict.PATCHED,
            f"{product.name} {default_cu} and later apply the fix by default ({config.name})",
            f"{config.name} on by default from {default_cu}{tag}",
        )
    if config.any_build or state != _VULN:
        return CveResult(
            Verdict.UNDETERMINED, f"{reason}; {config.reason}", f"{basis} + {config.name}{tag}"
        )
    if config.affects_only is not None:
        return CveResult(
            Verdict.UNDETERMINED,
            f"{reason}: vulnerable where used in {config.affects_only}, as the fix "
            f"({config.name}) cannot be in place before that build",
            f"{basis} + {config.name}{tag}",
        )
    return CveResult(
        Verdict.VULNERABLE,
        f"{reason}: the fix ({config.name}) cannot be in place before that build",
        basis + tag,
    )


def assess(
    build: str | Build, *, catalogue: Catalogue | None = None, today: date | None = None
) -> Assessment:
    """Classify one build; raises BuildParseError for a string that is not a build."""
    cat = default() if catalogue is None else catalogue
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
            cves={
                c.id: CveResult(Verdict.UNDETERMINED, "unknown product line", "unknown product")
                for c in cat.cves
            },
        )
    on = date.today() if today is None else today
    states: dict[object, Any] = {}
    settled = _settled(cat, product)
    groups = cat.code_groups.get(product.id, {})
    eol = not product.supported(on)
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
        placement = (
            f"unknown build of {product.name} {cu.name}, after {after.build} ({after.label})"
        )
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
        cves={
            c.id: settled.get(c.id) or _verdict(c, product, cu, b, beyond, cat, groups, states)
            for c in cat.cves
        },
        patch_lag=patch_lag(cat, product, cu, b, beyond=beyond, on=on),
    )


__all__ = ["assess"]
