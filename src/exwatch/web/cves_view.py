"""The CVE catalogue with hosts per CVE, and one CVE: facts, fixed builds, hosts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exwatch.errors import UsageError
from exwatch.exposure import cve_facts
from exwatch.knowledge.catalogue import default
from exwatch.report import aggregate
from exwatch.report.compromise import mitigated_counts
from exwatch.store import Store
from exwatch.web.listing import Column

CVE_COLUMNS = [
    Column("cve", "CVE"),
    Column("name", "Name"),
    Column("cvss", "CVSS", "float"),
    Column("kev", "KEV", "bool"),
    Column("fixed_by", "Fixed by"),
    Column("assessed", "Hosts assessed", "int"),
    Column("vulnerable", "Vulnerable", "int"),
    Column("patched", "Patched", "int"),
    Column("mitigated", "Mitigated", "int"),
    Column("undetermined", "Undetermined", "int"),
]


def cve_rows(store: Store, scan_id: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every catalogued CVE with the scan's host counts (from the scan's rollup)."""
    counts = {
        str(r.key): r for r in aggregate.group_counts(store, scan_id, "cve")
    }  # a few hundred rows
    mitigated = mitigated_counts(store, scan_id)
    out = []
    text = (query.get("q") or "").strip().lower()
    for fact in cve_facts():
        row = counts.get(fact["cve"])
        item = {
            "cve": fact["cve"],
            "name": fact["name"],
            "title": fact["title"],
            "cvss": fact["cvss"],
            "kev": fact["kev"],
            "fixed_by": fact["fixed_by"],
            "assessed": row.hosts if row else 0,
            "vulnerable": row.vulnerable if row else 0,
            "patched": int(row.extra.get("patched", 0)) if row else 0,
            "mitigated": mitigated[fact["cve"]],
            "undetermined": int(row.extra.get("undetermined", 0)) if row else 0,
        }
        blob = " ".join(str(v) for v in item.values()).lower()
        if text and text not in blob:
            continue
        if query.get("kev") == "1" and not item["kev"]:
            continue
        out.append(item)
    sort = query.get("sort") or "vulnerable"
    if sort not in {c.key for c in CVE_COLUMNS}:
        raise UsageError(f"cannot sort by {sort!r}")
    descending = query.get("dir", "desc") == "desc"
    out.sort(key=lambda r: (r[sort] is None, r[sort] if r[sort] is not None else 0))
    if descending:
        present = [r for r in out if r[sort] is not None]
        out = present[::-1] + [r for r in out if r[sort] is None]
    return out


def cve_detail(cve_id: str) -> dict[str, Any]:
    """What the catalogue says about one CVE: facts, sources, the fixed build per CU."""
    catalogue = default()
    key = cve_id.strip().upper()
    try:
        cve = catalogue.cve(key)
    except KeyError:
        raise UsageError(f"{key[:40]} is not in exwatch's catalogue") from None
    fixes = []
    for product_id, rule in cve.products.items():
        product = catalogue.product(product_id)
        fixes.append(
            {
                "product": product.name,
                "status": rule.status,
                "reason": rule.reason,
                "shipped_from": rule.shipped_from,
                "fixed_in": [
                    {"cu": cu, "build": str(row.build), "update": row.su or row.cu}
                    for cu, row in rule.fixed_in.items()
                ],
                "never_fixed": sorted(rule.never_fixed),
            }
        )
    return {
        "cve": cve.id,
        "name": cve.name,
        "title": cve.title,
        "published": cve.published.isoformat(),
        "cvss": cve.cvss,
        "severity": cve.severity,
        "vector": cve.vector,
        "kev": cve.kev,
        "kev_added": None if cve.kev_added is None else cve.kev_added.isoformat(),
        "exploited": cve.exploited,
        "fixed_by": cve.fixed_by,
        "config": None if cve.config is None else cve.config.name,
        "note": cve.note,
        "sources": [
            {"id": s, "ref": catalogue.source_ref(s, cve.id)}
            for s in dict.fromkeys([cve.fix_source, *cve.sources])
        ],
        "products": fixes,
    }


__all__ = ["CVE_COLUMNS", "cve_detail", "cve_rows"]
