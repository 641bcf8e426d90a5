"""Loading the shipped knowledge: sources, products, the build table and the CVE catalogue.

The data lives beside this module (sources.yaml, products.yaml, builds.csv, cves.yaml).
Loading turns it into typed, immutable structures and fails with DataError only on what
makes the files unreadable; everything that can be reported (a CU covered twice, an update
missing from builds.csv, an example that does not hold) is left to `consistency.selftest()`.

Per CVE and product the catalogue derives a `ProductRule` from the update that fixed the CVE
and the build table: which CUs got the fix in which build, which CU shipped with it, which
never got it.  `assess.py` turns a build and those rules into verdicts; this module never
imports it.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from exwatch import yamldoc
from exwatch.errors import BuildParseError, DataError
from exwatch.model import Build

DATA_DIR = Path(__file__).resolve().parent
BUILD_COLUMNS = ["product", "cu", "su", "build", "release_date", "source", "note"]
_CVE_RE = re.compile(r"CVE-(\d{4})-(\d{4,7})")


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    title: str
    where: str

    def ref(self, cve_id: str | None = None) -> str:
        """`where` with {id}, {year} and {bucket} filled in for one CVE."""
        if cve_id is None or "{" not in self.where:
            return self.where
        m = _CVE_RE.fullmatch(cve_id)
        year, number = (m.group(1), m.group(2)) if m else ("", "")
        bucket = number[:-3] + "xxx" if len(number) > 3 else "0xxx"
        return (
            self.where.replace("{id}", cve_id).replace("{year}", year).replace("{bucket}", bucket)
        )


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

    def supported(self, on: date) -> bool:
        return self.end_of_support is None or self.end_of_support > on


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

    @property
    def label(self) -> str:
        """The update's name, or "CU release" for the CU's own build."""
        return self.su or "CU release"


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

    def first(self, su: str) -> BuildRow | None:
        """The lowest build of this CU carrying the named update."""
        for r in self.rows:
            if r.su == su:
                return r
        return None


@dataclass(frozen=True, slots=True)
class Config:
    """A fix that also needs configuration a version number cannot show."""

    name: str
    reason: str
    on_by_default: Mapping[str, str]
    any_build: bool
    sources: tuple[str, ...]
    # Set when only some deployments are affected (e.g. "hybrid deployments"): then even a
    # build without the fix is not certainly vulnerable.
    affects_only: str | None = None


@dataclass(frozen=True, slots=True)
class ProductRule:
    """How one CVE applies to one product line, derived from `fixed_by` and builds.csv."""

    status: str  # affected | not-affected | unassessed
    reason: str = ""
    source: str = ""
    fixed_in: Mapping[str, BuildRow] = field(default_factory=dict)
    shipped_from: str | None = None  # first CU released with the fix in it
    never_fixed: frozenset[str] = frozenset()
    unlisted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Cve:
    id: str
    name: str
    title: str
    published: date
    cvss: float | None
    vector: str | None
    kev_added: date | None
    exploited: bool
    fixed_by: str
    fix_source: str
    affected: tuple[str, ...]
    not_affected: Mapping[str, str]
    fixes: Mapping[str, Mapping[str, Build]]
    msrc_cus: Mapping[str, frozenset[str]]
    config: Config | None
    products: Mapping[str, ProductRule]
    sources: tuple[str, ...]
    note: str
    examples: tuple[tuple[str, str], ...]

    @property
    def kev(self) -> bool:
        return self.kev_added is not None

    @property
    def severity(self) -> str | None:
        """CVSS 3.1 qualitative band of the base score; None without a score."""
        if self.cvss is None:
            return None
        if self.cvss >= 9.0:
            return "critical"
        if self.cvss >= 7.0:
            return "high"
        if self.cvss >= 4.0:
            return "medium"
        return "low" if self.cvss > 0 else "none"

    @property
    def pre_auth(self) -> bool | None:
        """Exploitable over the network without an account (vector AV:N and PR:N)."""
        if self.vector is None:
            return None
        metrics = dict(part.split(":", 1) for part in self.vector.split("/") if ":" in part)
        return metrics.get("AV") == "N" and metrics.get("PR") == "N"


@dataclass(frozen=True, slots=True)
class Excluded:
    id: str
    reason: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    sources: Mapping[str, Source]
    products: tuple[Product, ...]
    rows: tuple[BuildRow, ...]
    cus: Mapping[str, tuple[CumulativeUpdate, ...]]
    cves: tuple[Cve, ...]
    configs: Mapping[str, Config]
    excluded: tuple[Excluded, ...]
    by_build: Mapping[tuple[int, int, int, int], BuildRow]
    update_dates: Mapping[str, date]  # update name -> first release date (any product)

    def product_for(self, b: Build) -> Product | None:
        for p in self.products:
            if p.matches(b):
                return p
        return None

    def product(self, product_id: str) -> Product:
        for p in self.products:
            if p.id == product_id:
                return p
        raise KeyError(product_id)

    def cu_named(self, product: str, name: str) -> CumulativeUpdate | None:
        for cu in self.cus.get(product, ()):
            if cu.name == name:
                return cu
        return None

    @functools.cached_property
    def cu_positions(self) -> dict[str, dict[str, int]]:
        """Per product id, each CU name's place in its order (`CumulativeUpdate.index`)."""
        return {pid: {cu.name: cu.index for cu in reversed(cus)} for pid, cus in self.cus.items()}

    @functools.cached_property
    def code_groups(self) -> dict[str, dict[str, int]]:
        """Product id -> CVE id -> a number shared by every rule whose code fix reads the same
        (same update, fixed builds and CU lists): one update fixes several CVEs, so `assess`
        works out each group's state once per build instead of once per CVE."""
        groups: dict[object, int] = {}
        out: dict[str, dict[str, int]] = {}
        for c in self.cves:
            for pid, r in c.products.items():
                key = (  # product ids apart already: one build, one product
                    c.fixed_by,
                    frozenset((name, row.build) for name, row in r.fixed_in.items()),
                    r.shipped_from,
                    r.never_fixed,
                    r.unlisted,
                )
                out.setdefault(pid, {})[c.id] = groups.setdefault(key, len(groups))
        return out

    @functools.cached_property
    def _cve_index(self) -> dict[str, Cve]:
        return {c.id: c for c in self.cves}

    def cve(self, cve_id: str) -> Cve:
        return self._cve_index[cve_id]

    @functools.cached_property
    def latest_rows(self) -> dict[str, BuildRow]:
        """Per product, its most recent release (same-day releases: the highest build)."""
        out: dict[str, BuildRow] = {}
        for r in self.rows:
            best = out.get(r.product)
            if best is None or (r.release_date, r.build.as_tuple()) > (
                best.release_date,
                best.build.as_tuple(),
            ):
                out[r.product] = r
        return out

    def kev_cves(self) -> frozenset[str]:
        """Ids of the catalogue's CVEs that are in CISA's KEV catalog."""
        return frozenset(c.id for c in self.cves if c.kev)

    def source_ref(self, source_id: str, cve_id: str | None = None) -> str:
        src = self.sources.get(source_id)
        return source_id if src is None else src.ref(cve_id)


# ---------------------------------------------------------------- loading


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yamldoc.parse(fh)
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


def load_sources(path: Path) -> dict[str, Source]:
    doc = _read_yaml(path)
    raw = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path.name}: expected a mapping with a non-empty 'sources' mapping")
    out: dict[str, Source] = {}
    for sid, entry in raw.items():
        try:
            out[str(sid)] = Source(str(sid), str(entry["title"]), str(entry["where"]))
        except (KeyError, TypeError) as exc:
            raise DataError(f"{path.name}: source {sid}: missing or bad field: {exc}") from exc
    return out


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


def update_dates(rows: Iterable[BuildRow]) -> dict[str, date]:
    """Each update name's first release date over all products."""
    out: dict[str, date] = {}
    for r in rows:
        if r.su is not None and (r.su not in out or r.release_date < out[r.su]):
            out[r.su] = r.release_date
    return out


def _load_configs(doc: Mapping[str, Any], where: str) -> dict[str, Config]:
    out: dict[str, Config] = {}
    for name, raw in (doc.get("configs") or {}).items():
        try:
            out[str(name)] = Config(
                name=str(name),
                reason=str(raw["reason"]),
                on_by_default={str(k): str(v) for k, v in (raw.get("on_by_default") or {}).items()},
                any_build=bool(raw.get("any_build", False)),
                sources=tuple(str(s) for s in raw.get("sources") or ()),
                affects_only=None if raw.get("affects_only") is None else str(raw["affects_only"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{where}: config {name}: missing or bad field: {exc}") from exc
    return out


def derive_rule(
    cve: Cve, product: Product, cus: tuple[CumulativeUpdate, ...], dates: Mapping[str, date]
) -> ProductRule:
    """The rule for one product, from the CVE's update, the build table and the policy."""
    if product.id in cve.not_affected:
        src = cve.not_affected[product.id]
        return ProductRule("not-affected", f"{product.name} is not affected", src)
    fix_date = dates.get(cve.fixed_by)
    first_release = cus[0].release.release_date if cus else None
    listed = product.id in cve.affected or product.id in cve.fixes
    released_after_fix = (
        fix_date is not None and first_release is not None and first_release > fix_date
    )
    if not (listed or released_after_fix):
        eos = product.end_of_support
        if eos is not None and eos <= cve.published:
            return ProductRule(
                "unassessed",
                f"{product.name} was out of support when this CVE was published; "
                "Microsoft did not assess it",
            )
        return ProductRule(
            "not-affected",
            f"Microsoft lists no {product.name} build as affected",
            "msrc-affected",
        )
    explicit = cve.fixes.get(product.id, {})
    allowed = cve.msrc_cus.get(product.id)
    fixed_in: dict[str, BuildRow] = {}
    never: set[str] = set()
    unlisted: set[str] = set()
    shipped_from: str | None = None
    for cu in cus:
        if cu.name in explicit:
            row = next((r for r in cu.rows if r.build == explicit[cu.name]), None)
            if row is not None:
                fixed_in[cu.name] = row
            else:
                never.add(cu.name)  # an unknown build: consistency.selftest reports it
            continue
        row = cu.first(cve.fixed_by)
        after = fix_date is not None and cu.release.release_date > fix_date
        if after and shipped_from is None:
            shipped_from = cu.name
        if after:
            continue
        if row is not None and (allowed is None or cu.name in allowed):
            fixed_in[cu.name] = row
        elif row is not None:
            unlisted.add(cu.name)
        else:
            never.add(cu.name)
    return ProductRule(
        "affected",
        source=cve.fix_source,
        fixed_in=fixed_in,
        shipped_from=shipped_from,
        never_fixed=frozenset(never),
        unlisted=frozenset(unlisted),
    )


def _cve(raw: Mapping[str, Any], configs: Mapping[str, Config], where: str) -> Cve:
    config_name = raw.get("config")
    if config_name is not None and str(config_name) not in configs:
        raise DataError(f"{where}: unknown config {config_name!r}")
    kev = raw.get("kev")
    return Cve(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        title=str(raw["title"]),
        published=_date(raw["published"], where),
        cvss=None if raw.get("cvss") is None else float(raw["cvss"]),
        vector=None if raw.get("vector") is None else str(raw["vector"]),
        kev_added=None if kev is None else _date(kev, where),
        exploited=bool(raw.get("exploited", False)),
        fixed_by=str(raw["fixed_by"]),
        fix_source=str(raw.get("fix_source") or "cvelist"),
        affected=tuple(str(p) for p in raw["affected"]),
        not_affected={str(k): str(v) for k, v in (raw.get("not_affected") or {}).items()},
        fixes={
            str(p): {str(cu): _build(b, f"{where} fixes") for cu, b in m.items()}
            for p, m in (raw.get("fixes") or {}).items()
        },
        msrc_cus={
            str(p): frozenset(str(c) for c in v) for p, v in (raw.get("msrc_cus") or {}).items()
        },
        config=None if config_name is None else configs[str(config_name)],
        products={},
        sources=tuple(str(s) for s in raw["sources"]),
        note=str(raw.get("note") or ""),
        examples=tuple((str(e["build"]), str(e["expect"])) for e in raw.get("examples") or ()),
    )


def load_cves(
    path: Path,
    products: tuple[Product, ...],
    cus: Mapping[str, tuple[CumulativeUpdate, ...]],
    dates: Mapping[str, date],
) -> tuple[tuple[Cve, ...], dict[str, Config], tuple[Excluded, ...]]:
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("cves"), list):
        raise DataError(f"{path.name}: expected a mapping with a 'cves' list")
    configs = _load_configs(doc, path.name)
    out: list[Cve] = []
    for raw in doc["cves"]:
        cid = str(raw.get("id", "?")) if isinstance(raw, dict) else "?"
        where = f"{path.name}: {cid}"
        try:
            bare = _cve(raw, configs, where)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where}: missing or bad field: {exc}") from exc
        rules = {
            p.id: derive_rule(bare, p, cus.get(p.id, ()), dates)
            for p in products
            if p.in_build_table or p.id not in bare.affected
        }
        for p in products:  # listed but without a build table: nothing to compare with
            if p.id not in rules:
                rules[p.id] = ProductRule("unassessed", f"{p.name} is not in the build table")
        out.append(replace(bare, products=rules))
    excluded: list[Excluded] = []
    for raw in doc.get("excluded") or ():
        try:
            excluded.append(
                Excluded(str(raw["id"]), str(raw["reason"]), tuple(str(s) for s in raw["sources"]))
            )
        except (KeyError, TypeError) as exc:
            raise DataError(f"{path.name}: excluded entry: missing or bad field: {exc}") from exc
    return tuple(out), configs, tuple(excluded)


def load(data_dir: Path = DATA_DIR) -> Catalogue:
    sources = load_sources(data_dir / "sources.yaml")
    products = load_products(data_dir / "products.yaml")
    rows = load_builds(data_dir / "builds.csv")
    cus = group_cus(rows)
    dates = update_dates(rows)
    cves, configs, excluded = load_cves(data_dir / "cves.yaml", products, cus, dates)
    by_build = {r.build.as_tuple(): r for r in rows}
    return Catalogue(
        sources=sources,
        products=products,
        rows=rows,
        cus=cus,
        cves=cves,
        configs=configs,
        excluded=excluded,
        by_build=by_build,
        update_dates=dates,
    )


@functools.cache
def default() -> Catalogue:
    """The shipped catalogue, loaded once per process."""
    return load()


__all__ = [
    "BuildRow",
    "Catalogue",
    "Config",
    "CumulativeUpdate",
    "Cve",
    "Excluded",
    "Product",
    "ProductRule",
    "Source",
    "default",
    "derive_rule",
    "load",
]
