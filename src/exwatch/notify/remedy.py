"""What a host's owner should install, and the facts behind each CVE, from the catalogue.

Pure functions over the shipped knowledge (no I/O beyond loading it once):

- the update to install: the newest security update of the host's own cumulative update
  (CU) while that CU still receives updates; otherwise the newest CU of the product line
  with its newest update; for a product past its end of support, the move to a supported
  line first (and the line's last update for those with extended support);
- the patch lag (updates and days behind), computed for the notification date;
- per CVE: name, CVSS, KEV (CISA's catalog of exploited vulnerabilities), Microsoft's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from exwatch.assess import assess
from exwatch.errors import BuildParseError
from exwatch.knowledge.catalogue import Catalogue, default

# Microsoft's pages, by source id in sources.yaml.
BUILD_PAGE_SOURCE = "ms-docs"
CVE_PAGE_SOURCE = "msrc"


@dataclass(frozen=True, slots=True)
class CveFacts:
    id: str
    name: str
    cvss: float | None
    severity: str | None
    kev: bool
    kev_added: date | None
    pre_auth: bool | None
    fixed_by: str
    url: str


@dataclass(frozen=True, slots=True)
class Action:
    """What to do about one build."""

    kind: str  # "su": install an update for the CU; "cu": move to a newer CU; "upgrade": EOL
    product: str | None
    update: str | None  # the update's name as Microsoft spells it (Sep26SUv2)
    cu: str | None  # the CU it belongs to
    build: str | None  # the build number it brings
    upgrade_to: str | None  # a supported product line, for "upgrade"
    extended_only: bool  # the update is for extended-security-update customers only
    end_of_support: date | None
    page: str  # Microsoft's build-numbers page
    lifecycle_page: str | None


@dataclass(frozen=True, slots=True)
class Lag:
    exact: bool
    days_behind: int
    sus_behind: int  # security updates of the host's CU newer than its build
    cus_behind: int  # newer CUs of its product line (counted for unsupported lines too)
    build_date: date


@dataclass(frozen=True, slots=True)
class Advice:
    action: Action | None
    lag: Lag | None


@lru_cache(maxsize=256)
def cve_facts(cve_id: str, catalogue: Catalogue | None = None) -> CveFacts:
    cat = catalogue or default()
    try:
        cve = cat.cve(cve_id)
    except KeyError:
        return CveFacts(
            cve_id, "", None, None, False, None, None, "", cat.source_ref(CVE_PAGE_SOURCE, cve_id)
        )
    return CveFacts(
        id=cve.id,
        name=cve.name,
        cvss=cve.cvss,
        severity=cve.severity,
        kev=cve.kev,
        kev_added=cve.kev_added,
        pre_auth=cve.pre_auth,
        fixed_by=cve.fixed_by,
        url=cat.source_ref(CVE_PAGE_SOURCE, cve.id),
    )


def _supported_line(cat: Catalogue, on: date) -> tuple[str | None, str | None]:
    """(name, newest build) of the newest supported product line in the build table."""
    best = None
    for product in cat.products:
        if product.in_build_table and product.supported(on) and product.id in cat.latest_rows:
            best = product
    if best is None:
        return None, None
    return best.name, str(cat.latest_rows[best.id].build)


def _cus_after(cat: Catalogue, product_id: str, cu: str | None) -> int:
    names = [c.name for c in cat.cus.get(product_id, ())]
    return len(names) - 1 - names.index(cu) if cu in names else 0


@lru_cache(maxsize=4096)
def advice(build: str | None, on: date, catalogue: Catalogue | None = None) -> Advice:
    """What to install for `build` as of `on`; Advice(None, None) when the build is unknown."""
    if not build:
        return Advice(None, None)
    cat = catalogue or default()
    try:
        found = assess(build, catalogue=cat, today=on)
    except BuildParseError:
        return Advice(None, None)
    if found.product is None or found.product_id is None:
        return Advice(None, None)
    product = cat.product(found.product_id)
    page = cat.source_ref(BUILD_PAGE_SOURCE)
    lifecycle = next((s for s in product.sources if s.startswith("https://")), None)
    lag_info = found.patch_lag
    lag = (
        None
        if lag_info is None
        else Lag(
            exact=lag_info.exact,
            days_behind=lag_info.days_behind,
            sus_behind=lag_info.sus_behind,
            cus_behind=_cus_after(cat, product.id, found.cu),
            build_date=lag_info.build_date,
        )
    )
    if not product.supported(on):
        name, _newest = _supported_line(cat, on)
        last = cat.latest_rows.get(product.id)
        return Advice(
            Action(
                kind="upgrade",
                product=product.name,
                update=last.su if last is not None else None,
                cu=last.cu if last is not None else None,
                build=str(last.build) if last is not None else None,
                upgrade_to=name,
                extended_only=last is not None and "ESU" in last.note,
                end_of_support=product.end_of_support,
                page=page,
                lifecycle_page=lifecycle,
            ),
            lag,
        )
    if lag_info is None:
        return Advice(None, lag)
    if lag_info.cu_receives_sus:
        action = Action(
            "su", product.name, lag_info.cu_latest_su, found.cu, lag_info.cu_latest, None, False,
            product.end_of_support, page, lifecycle,
        )  # fmt: skip
    else:
        action = Action(
            "cu", product.name, lag_info.latest_su, lag_info.latest_cu, lag_info.latest, None,
            False, product.end_of_support, page, lifecycle,
        )  # fmt: skip
    return Advice(action, lag)


__all__ = ["Action", "Advice", "CveFacts", "Lag", "advice", "cve_facts"]
