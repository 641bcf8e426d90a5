"""The report by CVE: per CVE the hosts vulnerable, patched and undetermined in one scan,
with what the catalogue says of the CVE (CISA KEV mark and date, CVSS, the update that fixed
it and the first fixed build of each cumulative update).

Counts come from the scan's rollup (the verdicts the records carry); facts come from the
catalogue this exwatch ships, so a CVE the catalogue no longer (or not yet) knows keeps its
counts with empty facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exwatch.knowledge.catalogue import Catalogue, Cve, default
from exwatch.report import rollup
from exwatch.report.aggregate import country_code
from exwatch.report.compromise import mitigated_counts
from exwatch.report.lag import pct
from exwatch.store import Store


def fixed_builds(cve: Cve, catalogue: Catalogue | None = None) -> tuple[str, ...]:
    """First fixed build per CU, as `product CU build` (e.g. `2016 CU19 15.1.2176.9`),
    in product and CU order."""
    cat = catalogue or default()
    out = []
    for product, rule in cve.products.items():
        order = {cu.name: cu.index for cu in cat.cus.get(product, ())}
        for cu, row in sorted(rule.fixed_in.items(), key=lambda kv: order.get(kv[0], -1)):
            out.append(f"{product} {cu} {row.build}")
    return tuple(out)


def shipped_with_fix(cve: Cve) -> tuple[str, ...]:
    """Per product, the first CU released with the fix in it (`2016 CU20`): that CU and
    every later one are fixed whatever their update."""
    return tuple(
        f"{product} {rule.shipped_from}"
        for product, rule in cve.products.items()
        if rule.shipped_from is not None
    )


@dataclass(frozen=True, slots=True)
class CveRow:
    """One CVE in one scan: its Exchange hosts by verdict, and the catalogue's facts."""

    cve: str
    assessed: int  # Exchange hosts with a verdict for the CVE
    vulnerable: int
    patched: int
    undetermined: int
    vulnerable_eol: int  # vulnerable and on an end-of-life product
    facts: Cve | None  # None: not in this exwatch's catalogue
    mitigated: int = 0  # a mitigation seen on a vulnerable build (opt-in checks)

    @property
    def not_affected(self) -> int:
        """Assessed hosts whose verdict is none of the four (not-affected)."""
        return self.assessed - self.vulnerable - self.patched - self.undetermined - self.mitigated

    @property
    def kev(self) -> bool:
        return self.facts is not None and self.facts.kev

    def to_json(self) -> dict[str, Any]:
        f = self.facts
        return {
            "key": self.cve,
            "name": None if f is None else (f.name or None),
            "title": None if f is None else f.title,
            "kev": self.kev,
            "kev_added": None if f is None or f.kev_added is None else f.kev_added.isoformat(),
            "exploited": None if f is None else f.exploited,
            "cvss": None if f is None else f.cvss,
            "severity": None if f is None else f.severity,
            "pre_auth": None if f is None else f.pre_auth,
            "published": None if f is None else f.published.isoformat(),
            "fixed_by": None if f is None else f.fixed_by,
            "config": None if f is None or f.config is None else f.config.name,
            "hosts": self.assessed,
            "vulnerable": self.vulnerable,
            "vulnerable_pct": pct(self.vulnerable, self.assessed),
            "patched": self.patched,
            "undetermined": self.undetermined,
            "mitigated": self.mitigated,
            "not_affected": self.not_affected,
            "eol": self.vulnerable_eol,
            "fixed_builds": [] if f is None else list(fixed_builds(f)),
            "shipped_with_fix": [] if f is None else list(shipped_with_fix(f)),
        }


def cve_report(
    store: Store,
    scan_id: str,
    *,
    country: str | None = None,
    kev_only: bool = False,
    limit: int | None = None,
) -> list[CveRow]:
    """Per CVE assessed in the scan (optionally only those in CISA's KEV catalog), most
    vulnerable hosts first."""
    code = country_code(country)
    cat = default()
    known = {c.id: c for c in cat.cves}
    out = []
    mitigated = mitigated_counts(store, scan_id, country=code)
    for key, _, hosts, _, vulnerable, eol, patched, undetermined in rollup.merged(
        store, scan_id, "cve", code
    ):
        facts = known.get(str(key))
        if kev_only and (facts is None or not facts.kev):
            continue
        out.append(
            CveRow(
                str(key),
                int(hosts),
                int(vulnerable),
                int(patched),
                int(undetermined),
                int(eol),
                facts,
                mitigated[str(key)],
            )
        )
        if limit is not None and len(out) >= limit:
            break
    return out


__all__ = ["CveRow", "cve_report", "fixed_builds", "shipped_with_fix"]
