"""Patch lag: how far one build is behind the updates Microsoft released (pure, no I/O).

For a build placed in its product line and CU (by `assess`), the lag is measured against
two references: the newest update of the build's own CU ("could have installed it without
changing CU") and the newest update of the product line ("behind the line").  Counts are
exact for a known four-part build and upper bounds when only the CU is visible, because
such a server may already carry any update of its CU.
"""

from __future__ import annotations

from datetime import date

from exwatch.knowledge.catalogue import BuildRow, Catalogue, CumulativeUpdate, Product
from exwatch.model import Build, PatchLag


def line_latest(cat: Catalogue, product_id: str) -> BuildRow | None:
    """The product line's most recent release (same-day releases: the highest build)."""
    return cat.latest_rows.get(product_id)


def patch_lag(
    cat: Catalogue,
    product: Product,
    cu: CumulativeUpdate | None,
    build: Build,
    *,
    beyond: bool,
    on: date,
) -> PatchLag | None:
    """The lag of `build`, placed in `cu` of `product`; None where there is nothing to compare."""
    if cu is None or not product.in_build_table:
        return None
    latest = line_latest(cat, product.id)
    if latest is None:
        return None
    row = cat.by_build.get(build.as_tuple()) if build.revision is not None else None
    if row is not None:
        exact, build_date = True, row.release_date
        newer = [r for r in cu.rows if r.build.as_tuple() > build.as_tuple()]
    elif beyond:
        # Newer than every known build of the CU: at least as current as the newest.
        exact, build_date, newer = False, cu.newest.release_date, []
    elif build.revision is None:
        exact, build_date = False, cu.release.release_date
        newer = list(cu.rows[1:])
    else:
        older = [r for r in cu.rows if r.build.as_tuple() < build.as_tuple()]
        exact = False
        build_date = (older[-1] if older else cu.release).release_date
        newer = [r for r in cu.rows if r.build.as_tuple() > build.as_tuple()]
    own = row.su if row is not None else None
    sus_behind = len({r.su for r in newer if r.su is not None and r.su != own})
    any_latest = max(cat.latest_rows.values(), key=lambda r: (r.release_date, r.build.as_tuple()))
    supported = product.supported(on)
    cus = cat.cus[product.id]
    return PatchLag(
        exact=exact,
        build_date=build_date,
        cu_latest=str(cu.newest.build),
        cu_latest_su=cu.newest.su,
        sus_behind=sus_behind,
        cu_receives_sus=supported and cu.newest.release_date >= latest.release_date,
        latest=str(latest.build),
        latest_su=latest.su,
        latest_cu=latest.cu,
        days_behind=max(0, (latest.release_date - build_date).days),
        days_behind_any=max(0, (any_latest.release_date - build_date).days),
        cus_behind=(cus[-1].index - cu.index) if supported else None,
    )


__all__ = ["line_latest", "patch_lag"]
