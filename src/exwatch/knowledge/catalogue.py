"""Loading and checking the shipped knowledge: products, the build table and the CVE catalogue.

The data lives beside this module (products.yaml, builds.csv, cves.yaml).  Loading turns it
into typed, immutable structures and fails with DataError on anything structurally wrong;
`selftest()` goes further and checks every example and the internal consistency.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from exwatch.errors import BuildParseError, DataError
from exwatch.model import Build, Verdict
from exwatch.selftest import CheckResult

DATA_DIR = Path(__file__).resolve().parent
PRODUCT_STATUSES = ("affected", "not-affected", "unassessed")
SEVERITIES = ("critical", "high", "medium", "low")
BUILD_COLUMNS = ["product", "cu", "su", "build", "release_date", "source", "note"]


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    major: int
    minor: int | None
    build_from: int | None
    build_below: int | None
    end_of_support: date | None
    in_build_table: bool
    sources: tuple[str, ...]
    match_examples: tuple[str, ...]
    no_match_examples: tuple[str, ...]

    def matches(self, b: Build) -> bool:
        if b.major != self.major or (self.minor is not None and b.minor != self.minor):
            return False
        if self.build_from is not None and b.build < self.build_from:
            return False
        return self.build_below is None or b.build < self.build_below


@dataclass(frozen=True, slots=True)
class BuildRow:
    product: str
    cu: str
    su: str | None
    build: Build
    release_date: date
    source: str
    note: str
    line: int


@dataclass(frozen=True, slots=True)
class CumulativeUpdate:
    """One CU (or 2010 service pack) with its known builds, oldest first."""

    product: str
    name: str
    index: int
    rows: tuple[BuildRow, ...]

    @property
    def release(self) -> BuildRow:
        return self.rows[0]

    @property
    def start_key(self) -> tuple[int, int, int]:
        return self.rows[0].build.cu_key

    @property
    def keys(self) -> frozenset[tuple[int, int, int]]:
        return frozenset(r.build.cu_key for r in self.rows)

    @property
    def newest(self) -> BuildRow:
        return self.rows[-1]


@dataclass(frozen=True, slots=True)
class ProductRule:
    """How one CVE applies to one product line."""

    status: str
    reason: str
    fixed_in: Mapping[str, Build] = field(default_factory=dict)
    shipped_fixed_from: str | None = None
    never_fixed: frozenset[str] = frozenset()
    never_fixed_spec: tuple[str, ...] = ()
    undecidable_from: Mapping[str, Build | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Cve:
    id: str
    name: str
    title: str
    family: str
    severity: str
    cvss: float | None
    kev_listed: bool
    kev_added: date | None
    published: date
    fixed_by: str
    products: Mapping[str, ProductRule]
    sources: tuple[str, ...]
    examples: tuple[tuple[str, Verdict], ...]


@dataclass(frozen=True)
class Catalogue:
    products: tuple[Product, ...]
    rows: tuple[BuildRow, ...]
    cus: Mapping[str, tuple[CumulativeUpdate, ...]]
    cves: tuple[Cve, ...]
    by_build: Mapping[tuple[int, int, int, int], BuildRow]

    def product_for(self, b: Build) -> Product | None:
        for p in self.products:
            if p.matches(b):
                return p
        return None

    def cu_named(self, product: str, name: str) -> CumulativeUpdate | None:
        for cu in self.cus.get(product, ()):
            if cu.name == name:
                return cu
        return None

    def cve(self, cve_id: str) -> Cve:
        for c in self.cves:
            if c.id == cve_id:
                return c
        raise KeyError(cve_id)


# ---------------------------------------------------------------- loading


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path.name}: cannot read: {exc}") from exc


def _build(value: object, where: str) -> Build:
    try:
        return Build.parse(str(value))
    except BuildParseError as exc:
        raise DataError(f"{where}: {exc}") from exc


def _date(value: object, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise DataError(f"{where}: not an ISO date: {value!r}") from exc


def load_products(path: Path) -> tuple[Product, ...]:
    doc = _read_yaml(path)
    out: list[Product] = []
    for i, raw in enumerate(doc.get("products", []) if isinstance(doc, dict) else []):
        where = f"{path.name}: product #{i + 1}"
        try:
            match = raw["match"]
            eos = raw.get("end_of_support")
            out.append(
                Product(
                    id=str(raw["id"]),
                    name=str(raw["name"]),
                    major=int(match["major"]),
                    minor=None if match.get("minor") is None else int(match["minor"]),
                    build_from=match.get("build_from"),
                    build_below=match.get("build_below"),
                    end_of_support=None if eos is None else _date(eos, where),
                    in_build_table=bool(raw["in_build_table"]),
                    sources=tuple(raw.get("sources", ())),
                    match_examples=tuple(str(x) for x in raw["examples"]["match"]),
                    no_match_examples=tuple(str(x) for x in raw["examples"].get("no_match", ())),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: missing or bad field: {exc}") from exc
    if not out:
        raise DataError(f"{path.name}: no products")
    return tuple(out)


def load_builds(path: Path) -> tuple[BuildRow, ...]:
    rows: list[BuildRow] = []
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames != BUILD_COLUMNS:
                raise DataError(f"{path.name}: header must be {','.join(BUILD_COLUMNS)}")
            for raw in reader:
                where = f"{path.name}:{reader.line_num}"
                if None in raw or any(raw.get(c) is None for c in BUILD_COLUMNS):
                    raise DataError(f"{where}: wrong number of columns")
                b = _build(raw["build"], where)
                if b.revision is None:
                    raise DataError(f"{where}: build must have 4 parts: {raw['build']}")
                rows.append(
                    BuildRow(
                        product=raw["product"].strip(),
                        cu=raw["cu"].strip(),
                        su=raw["su"].strip() or None,
                        build=b,
                        release_date=_date(raw["release_date"], where),
                        source=raw["source"].strip(),
                        note=raw["note"].strip(),
                        line=reader.line_num,
                    )
                )
    except OSError as exc:
        raise DataError(f"{path.name}: cannot read: {exc}") from exc
    return tuple(rows)


def group_cus(rows: Iterable[BuildRow]) -> dict[str, tuple[CumulativeUpdate, ...]]:
    """Group rows into CUs per product, CUs ordered by their release build."""
    grouped: dict[str, dict[str, list[BuildRow]]] = {}
    for r in rows:
        grouped.setdefault(r.product, {}).setdefault(r.cu, []).append(r)
    out: dict[str, tuple[CumulativeUpdate, ...]] = {}
    for product, cus in grouped.items():
        ordered = sorted(
            (sorted(rs, key=lambda r: r.build.as_tuple()) for rs in cus.values()),
            key=lambda rs: rs[0].build.as_tuple(),
        )
        out[product] = tuple(
            CumulativeUpdate(product, rs[0].cu, i, tuple(rs)) for i, rs in enumerate(ordered)
        )
    return out


def _expand_cus(spec: Iterable[str], order: list[str], where: str) -> frozenset[str]:
    """Expand ["RTM..CU3", "CU5"] using the product's CU order."""
    names: set[str] = set()
    for item in spec:
        if ".." in item:
            first, last = (s.strip() for s in item.split("..", 1))
            if first not in order or last not in order:
                raise DataError(f"{where}: range {item!r} names an unknown CU")
            i, j = order.index(first), order.index(last)
            if i > j:
                raise DataError(f"{where}: range {item!r} runs backwards")
            names.update(order[i : j + 1])
        else:
            names.add(item)
    return frozenset(names)


def _product_rule(raw: Mapping[str, Any], order: list[str], where: str) -> ProductRule:
    status = raw.get("status")
    if status not in PRODUCT_STATUSES:
        raise DataError(f"{where}: status must be one of {PRODUCT_STATUSES}, not {status!r}")
    if status != "affected":
        return ProductRule(status=status, reason=str(raw.get("reason", "")))
    undecidable: dict[str, Build | None] = {}
    for cu, value in (raw.get("undecidable_from") or {}).items():
        undecidable[str(cu)] = None if value == "cu" else _build(value, f"{where} {cu}")
    never_spec = tuple(str(x) for x in raw.get("never_fixed") or ())
    return ProductRule(
        status=status,
        reason=str(raw.get("reason", "")),
        fixed_in={
            str(k): _build(v, f"{where} {k}") for k, v in (raw.get("fixed_in") or {}).items()
        },
        shipped_fixed_from=raw.get("shipped_fixed_from"),
        never_fixed=_expand_cus(never_spec, order, where),
        never_fixed_spec=never_spec,
        undecidable_from=undecidable,
    )


def load_cves(path: Path, cus: Mapping[str, tuple[CumulativeUpdate, ...]]) -> tuple[Cve, ...]:
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("cves"), list):
        raise DataError(f"{path.name}: expected a mapping with a 'cves' list")
    out: list[Cve] = []
    for raw in doc["cves"]:
        cid = str(raw.get("id", "?"))
        where = f"{path.name}: {cid}"
        try:
            products = {
                str(pid): _product_rule(
                    rule, [c.name for c in cus.get(str(pid), ())], f"{where} {pid}"
                )
                for pid, rule in raw["products"].items()
            }
            kev = raw["kev"]
            examples = tuple(
                (str(e["build"]), Verdict(e["expect"])) for e in raw.get("examples") or ()
            )
            out.append(
                Cve(
                    id=cid,
                    name=str(raw["name"]),
                    title=str(raw["title"]),
                    family=str(raw["family"]),
                    severity=str(raw["severity"]),
                    cvss=None if raw.get("cvss") is None else float(raw["cvss"]),
                    kev_listed=bool(kev["listed"]),
                    kev_added=None if kev.get("added") is None else _date(kev["added"], where),
                    published=_date(raw["published"], where),
                    fixed_by=str(raw["fixed_by"]),
                    products=products,
                    sources=tuple(str(s) for s in raw["sources"]),
                    examples=examples,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: missing or bad field: {exc}") from exc
    return tuple(out)


def load(data_dir: Path = DATA_DIR) -> Catalogue:
    products = load_products(data_dir / "products.yaml")
    rows = load_builds(data_dir / "builds.csv")
    cus = group_cus(rows)
    cves = load_cves(data_dir / "cves.yaml", cus)
    by_build = {r.build.as_tuple(): r for r in rows}
    return Catalogue(products=products, rows=rows, cus=cus, cves=cves, by_build=by_build)


@functools.cache
def default() -> Catalogue:
    """The shipped catalogue, loaded once per process."""
    return load()


# ---------------------------------------------------------------- self-test


def _check_builds(cat: Catalogue, res: CheckResult) -> None:
    known_products = {p.id for p in cat.products if p.in_build_table}
    seen: dict[tuple[int, int, int, int], int] = {}
    last: dict[str, BuildRow] = {}
    for r in cat.rows:
        where = f"builds.csv:{r.line}"
        if r.product not in known_products:
            res.problems.append(f"{where}: unknown product {r.product!r}")
            continue
        product = next(p for p in cat.products if p.id == r.product)
        if not product.matches(r.build):
            res.problems.append(f"{where}: {r.build} is not a {product.name} build")
        key = r.build.as_tuple()
        if key in seen:
            res.problems.append(f"{where}: duplicate build {r.build} (also line {seen[key]})")
        seen[key] = r.line
        prev = last.get(r.product)
        if prev is not None and prev.build.as_tuple() >= key:
            res.problems.append(f"{where}: not sorted: {r.build} after {prev.build}")
        last[r.product] = r
        if not r.source:
            res.problems.append(f"{where}: no source")
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


def _check_cves(cat: Catalogue, res: CheckResult) -> None:
    from exwatch.assess import assess  # assess imports this module

    ids = [c.id for c in cat.cves]
    if len(set(ids)) != len(ids):
        res.problems.append("cves.yaml: duplicate CVE ids")
    product_ids = {p.id for p in cat.products}
    for cve in cat.cves:
        where = f"cves.yaml: {cve.id}"
        if cve.severity not in SEVERITIES:
            res.problems.append(f"{where}: severity {cve.severity!r} not in {SEVERITIES}")
        if not cve.sources:
            res.problems.append(f"{where}: no sources")
        if set(cve.products) != product_ids:
            res.problems.append(
                f"{where}: must state every product, missing "
                f"{sorted(product_ids - set(cve.products))}"
            )
        if not cve.examples:
            res.problems.append(f"{where}: no examples")
        for pid, rule in cve.products.items():
            if rule.status != "affected":
                if not rule.reason:
                    res.problems.append(f"{where} {pid}: {rule.status} needs a reason")
                continue
            _check_rule_coverage(cat, cve, pid, rule, res)
        for text, expected in cve.examples:
            res.examples += 1
            got = assess(text, catalogue=cat).cves.get(cve.id)
            if got is None or got.verdict is not expected:
                res.problems.append(
                    f"{where}: example {text} expected {expected.value}, got "
                    f"{got.verdict.value if got else None} ({got.reason if got else ''})"
                )


def _check_rule_coverage(
    cat: Catalogue, cve: Cve, pid: str, rule: ProductRule, res: CheckResult
) -> None:
    where = f"cves.yaml: {cve.id} {pid}"
    cus = cat.cus.get(pid, ())
    names = [c.name for c in cus]
    shipped: set[str] = set()
    if rule.shipped_fixed_from is not None:
        if rule.shipped_fixed_from not in names:
            res.problems.append(
                f"{where}: shipped_fixed_from {rule.shipped_fixed_from} is not a known CU"
            )
        else:
            shipped = set(names[names.index(rule.shipped_fixed_from) :])
    groups = {
        "fixed_in": set(rule.fixed_in),
        "shipped_fixed_from": shipped,
        "never_fixed": set(rule.never_fixed),
        "undecidable_from": set(rule.undecidable_from),
    }
    for cu in names:
        holders = [g for g, members in groups.items() if cu in members]
        if len(holders) != 1:
            res.problems.append(f"{where}: CU {cu} is covered {len(holders)} times ({holders})")
    for group, members in groups.items():
        for cu in sorted(members - set(names)):
            res.problems.append(f"{where}: {group} names unknown CU {cu}")
    for cu, b in [*rule.fixed_in.items(), *rule.undecidable_from.items()]:
        if b is None:
            continue
        info = cat.cu_named(pid, cu)
        row = cat.by_build.get(b.as_tuple())
        if info is None or row is None or row.cu != cu or row.product != pid:
            res.problems.append(f"{where}: {b} is not a known build of {pid} {cu}")


def selftest(data_dir: Path | None = None) -> CheckResult:
    res = CheckResult("knowledge: products, builds, CVE catalogue")
    try:
        cat = default() if data_dir is None else load(data_dir)
    except DataError as exc:
        res.problems.append(str(exc))
        return res
    _check_products(cat, res)
    _check_builds(cat, res)
    _check_cves(cat, res)
    return res


__all__ = [
    "BuildRow",
    "Catalogue",
    "CumulativeUpdate",
    "Cve",
    "Product",
    "ProductRule",
    "default",
    "load",
    "selftest",
]
