"""Diff the shipped tables against a newer source the user supplies (`exwatch knowledge check`).

Accepted inputs, recognised by content (not by file name):

- a build list: a JSON object `{build: {name, release_date, ...}}` (the shape of
  righel/ms-exchange-version-nse's ms-exchange-unique-versions-dict.json), a JSON list of
  objects with a build field, or CSV with a "Build number" column (the table of Microsoft's
  "build numbers and release dates" page saved as CSV);
- a CVE list: a JSON object `{CVE: {...}}` (cves_affected_products_dict.json), the MSRC
  Security Update Guide export as CSV (rows whose product is Exchange Server), or any text
  with CVE ids in it;
- the CISA KEV catalog (JSON or CSV): KEV dates of catalogued CVEs, and Exchange CVEs in KEV
  that the catalogue lacks.

The result says what to add (ready-to-paste builds.csv rows, cves.yaml skeletons) and what
differs.  Nothing is written: adding a build or a CVE stays a sourced, reviewed edit
(docs/knowledge.md).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from exwatch.errors import BuildParseError, UsageError
from exwatch.knowledge.catalogue import Catalogue
from exwatch.model import Build

_BUILD_IN_TEXT = re.compile(r"\b1[45]\.0?\d\.\d{1,4}\.\d{1,3}\b")
_CVE = re.compile(r"\bCVE-(\d{4})-(\d{4,7})\b")
_UPDATE = re.compile(r"\b([A-Z][a-z]{2}\d{2}(?:SU|HU)(?:v\d)?)\b")
_CU = re.compile(r"\b(?:CU ?(\d{1,2})|Cumulative Update (\d{1,2}))\b", re.IGNORECASE)
_RU = re.compile(r"\b(?:RU ?(\d{1,2})|Update Rollup (\d{1,2}))(?: ?v(\d))?\b", re.IGNORECASE)
_MAX_BYTES = 64 * 1024 * 1024  # larger inputs are not build lists or CVE lists
_FIRST_YEAR = 2020  # the catalogue's scope


@dataclass(frozen=True, slots=True)
class UpstreamBuild:
    build: Build
    name: str
    release_date: date | None
    date_text: str


@dataclass(frozen=True, slots=True)
class UpstreamCve:
    id: str
    detail: str  # affected products / release date / KEV date, as the input gave them
    kev_added: date | None = None


@dataclass(slots=True)
class Upstream:
    """What one input file held."""

    path: str
    kind: str  # builds | cves | kev
    builds: list[UpstreamBuild] = field(default_factory=list)
    cves: list[UpstreamCve] = field(default_factory=list)
    skipped: int = 0  # entries that were not understood


@dataclass(slots=True)
class Report:
    builds_missing: list[dict[str, str]] = field(default_factory=list)
    builds_date_differs: list[dict[str, str]] = field(default_factory=list)
    builds_only_here: list[str] = field(default_factory=list)
    cves_missing: list[dict[str, str]] = field(default_factory=list)
    kev_differs: list[dict[str, str]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def something_to_do(self) -> bool:
        return bool(
            self.builds_missing or self.builds_date_differs or self.cves_missing or self.kev_differs
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "builds_missing": self.builds_missing,
            "builds_date_differs": self.builds_date_differs,
            "builds_only_here": self.builds_only_here,
            "cves_missing": self.cves_missing,
            "kev_differs": self.kev_differs,
        }


# ---------------------------------------------------------------- reading


def _parse_date(text: str) -> date | None:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%B %d, %Y", "%b %d, %Y", "%m/%d/%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _build_of(text: object) -> Build | None:
    m = _BUILD_IN_TEXT.search(str(text))
    if m is None:
        return None
    try:
        return Build.parse(m.group())
    except BuildParseError:
        return None


def _pick(entry: Mapping[str, Any], *names: str) -> str:
    lowered = {str(k).lower(): v for k, v in entry.items()}
    for name in names:
        for key, value in lowered.items():
            if name in key and value not in (None, ""):
                return str(value)
    return ""


def _from_build_map(path: str, doc: Mapping[str, Any]) -> Upstream:
    up = Upstream(path, "builds")
    for key, value in doc.items():
        b = _build_of(key)
        if b is None or b.revision is None:
            up.skipped += 1
            continue
        entry = value if isinstance(value, Mapping) else {"name": value}
        date_text = _pick(entry, "release", "date")
        up.builds.append(
            UpstreamBuild(b, _pick(entry, "name", "product"), _parse_date(date_text), date_text)
        )
    return up


def _from_rows(path: str, rows: Iterable[Mapping[str, Any]]) -> Upstream:
    up = Upstream(path, "builds")
    for entry in rows:
        b = _build_of(_pick(entry, "build"))
        if b is None or b.revision is None:
            up.skipped += 1
            continue
        date_text = _pick(entry, "release", "date")
        up.builds.append(
            UpstreamBuild(b, _pick(entry, "name", "product"), _parse_date(date_text), date_text)
        )
    return up


def _from_cve_map(path: str, doc: Mapping[str, Any]) -> Upstream:
    up = Upstream(path, "cves")
    for key, value in doc.items():
        if not _CVE.fullmatch(str(key)) or (isinstance(value, Mapping) and not value):
            up.skipped += 1  # not a CVE id, or no Exchange product listed for it
            continue
        detail = ""
        if isinstance(value, Mapping) and value:
            parts = []
            for cu_key, info in value.items():
                if isinstance(info, Mapping):
                    parts.append(
                        f"{info.get('product', cu_key)} ({str(info.get('releaseDate', ''))[:10]})"
                    )
            detail = "; ".join(parts)
        up.cves.append(UpstreamCve(str(key), detail))
    return up


def _from_kev(path: str, entries: Iterable[Mapping[str, Any]]) -> Upstream:
    up = Upstream(path, "kev")
    for entry in entries:
        cid = _pick(entry, "cveid")
        vendor_product = f"{_pick(entry, 'vendorproject')} {_pick(entry, 'product')}".lower()
        if (
            not _CVE.fullmatch(cid)
            or "exchange" not in vendor_product
            or "microsoft" not in vendor_product
        ):
            up.skipped += 1
            continue
        added = _parse_date(_pick(entry, "dateadded"))
        up.cves.append(UpstreamCve(cid, _pick(entry, "vulnerabilityname"), added))
    return up


def _from_text(path: str, text: str) -> Upstream:
    ids = sorted({m.group() for m in _CVE.finditer(text)})
    return Upstream(path, "cves", cves=[UpstreamCve(cid, "") for cid in ids])


def _from_csv(path: str, text: str) -> Upstream:
    rows = list(csv.DictReader(io.StringIO(text)))
    header = [h.lower() for h in (rows[0].keys() if rows else [])]
    if any("cveid" in h for h in header):
        return _from_kev(path, rows)
    if any("build" in h for h in header) and not any(h.startswith("details") for h in header):
        return _from_rows(path, rows)
    if any("product" in h for h in header):
        # The Security Update Guide export: keep Exchange Server rows, collect their CVE ids.
        up = Upstream(path, "cves")
        seen: dict[str, list[str]] = {}
        for row in rows:
            product = _pick(row, "product")
            if "exchange server" not in product.lower():
                up.skipped += 1
                continue
            for m in _CVE.finditer(" ".join(str(v) for v in row.values())):
                seen.setdefault(m.group(), []).append(product)
        up.cves = [UpstreamCve(cid, "; ".join(sorted(set(p)))) for cid, p in sorted(seen.items())]
        return up
    return _from_text(path, text)


def read_upstream(path: Path) -> Upstream:
    """Read one user-supplied file; raises UsageError when it cannot be read at all."""
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise UsageError(
                f"{path}: larger than {_MAX_BYTES // (1024 * 1024)} MiB; not a build or CVE list"
            )
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    name = str(path)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from exc
        if isinstance(doc, Mapping) and isinstance(doc.get("vulnerabilities"), list):
            return _from_kev(name, [v for v in doc["vulnerabilities"] if isinstance(v, Mapping)])
        if isinstance(doc, Mapping):
            keys = list(doc)
            if keys and all(_CVE.fullmatch(str(k)) for k in keys[:20]):
                return _from_cve_map(name, doc)
            return _from_build_map(name, doc)
        if isinstance(doc, list):
            objs = [e for e in doc if isinstance(e, Mapping)]
            if objs and any(_pick(e, "cveid") for e in objs[:20]):
                return _from_kev(name, objs)
            if objs:
                return _from_rows(name, objs)
            return _from_text(name, " ".join(str(e) for e in doc))
        raise UsageError(f"{path}: JSON holds neither a list nor an object")
    if "\n" in text and "," in text.split("\n", 1)[0]:
        return _from_csv(name, text)
    return _from_text(name, text)


# ---------------------------------------------------------------- diffing


def _in_scope(b: Build) -> bool:
    """Builds the table covers: Exchange 2010 SP3 and every 15.x line."""
    return (b.major == 14 and b.minor == 3) or b.major == 15


def _suggest_row(cat: Catalogue, ub: UpstreamBuild) -> dict[str, str]:
    product = cat.product_for(ub.build)
    pid = product.id if product else "?"
    cu_name = ""
    for cu in cat.cus.get(pid, ()):
        if ub.build.cu_key in cu.keys:
            cu_name = cu.name
    if not cu_name and pid == "2010" and (ub.build.major, ub.build.minor) == (14, 3):
        # 2010 rollups each carry their own build number: every 14.3 build is SP3.
        cu_name = "SP3"
    notes: list[str] = []
    if not cu_name:
        m = _CU.search(ub.name)
        cu_name = f"CU{m.group(1) or m.group(2)}" if m else "?"
        notes.append("new CU: add its release row (su empty) first")
    su = ""
    m = _UPDATE.search(ub.name)
    r = _RU.search(ub.name) if pid == "2010" else None
    if m:
        su = m.group(1)
    elif r:
        su = f"RU{r.group(1) or r.group(2)}" + (f"v{r.group(3)}" if r.group(3) else "")
    elif notes:
        su = ""
    else:
        notes.append("name the update (e.g. Mar26SU) from the source")
        su = "?"
    if ub.release_date is None:
        notes.append(f"release date {ub.date_text!r} is not a day: find the exact date")
    return {
        "product": pid,
        "cu": cu_name,
        "su": su,
        "build": str(ub.build),
        "release_date": "" if ub.release_date is None else ub.release_date.isoformat(),
        "source": "TODO-source-id",
        "note": "; ".join(notes),
        "upstream_name": ub.name,
    }


def diff(cat: Catalogue, inputs: Iterable[Upstream]) -> Report:
    report = Report()
    known = {r.build.as_tuple(): r for r in cat.rows}
    catalogued = {c.id: c for c in cat.cves}
    excluded = {e.id for e in cat.excluded}
    seen_builds: set[tuple[int, int, int, int]] = set()
    covered_products: set[str] = set()
    for up in inputs:
        report.inputs.append(
            {
                "path": up.path,
                "kind": up.kind,
                "builds": len(up.builds),
                "cves": len(up.cves),
                "skipped": up.skipped,
            }
        )
        for ub in up.builds:
            if not _in_scope(ub.build):
                continue
            key = ub.build.as_tuple()
            seen_builds.add(key)
            product = cat.product_for(ub.build)
            if product is not None:
                covered_products.add(product.id)
            row = known.get(key)
            if row is None:
                report.builds_missing.append(_suggest_row(cat, ub))
            elif ub.release_date is not None and ub.release_date != row.release_date:
                report.builds_date_differs.append(
                    {
                        "build": str(ub.build),
                        "here": row.release_date.isoformat(),
                        "upstream": ub.release_date.isoformat(),
                        "here_note": row.note,
                    }
                )
        for uc in up.cves:
            m = _CVE.fullmatch(uc.id)
            if m is None or int(m.group(1)) < _FIRST_YEAR:
                continue
            cve = catalogued.get(uc.id)
            if cve is None and uc.id not in excluded:
                report.cves_missing.append({"cve": uc.id, "detail": uc.detail, "from": up.kind})
            elif cve is not None and up.kind == "kev" and cve.kev_added != uc.kev_added:
                report.kev_differs.append(
                    {
                        "cve": uc.id,
                        "here": "" if cve.kev_added is None else cve.kev_added.isoformat(),
                        "upstream": "" if uc.kev_added is None else uc.kev_added.isoformat(),
                    }
                )
    report.builds_only_here = sorted(
        (
            str(r.build)
            for r in cat.rows
            if r.product in covered_products and r.build.as_tuple() not in seen_builds
        ),
        key=lambda s: Build.parse(s).as_tuple(),
    )
    report.builds_missing.sort(key=lambda d: Build.parse(d["build"]).as_tuple())
    dedup: dict[str, dict[str, str]] = {}
    for c in report.cves_missing:
        dedup.setdefault(c["cve"], c)
    report.cves_missing = sorted(dedup.values(), key=lambda d: d["cve"])
    return report


def csv_rows(rows: Iterable[Mapping[str, str]]) -> str:
    """builds.csv lines (no header) for the suggested rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for r in rows:
        writer.writerow(
            [r["product"], r["cu"], r["su"], r["build"], r["release_date"], r["source"], r["note"]]
        )
    return out.getvalue()


def cve_skeleton(entry: Mapping[str, str]) -> str:
    """A cves.yaml entry to complete from the CVE record (fields the self-test requires)."""
    return (
        f"  - id: {entry['cve']}\n"
        "    title: Microsoft Exchange Server ... Vulnerability   # from the CVE record\n"
        "    published: YYYY-MM-DD\n"
        "    cvss: null          # CVSS 3.1 base score of the CVE record\n"
        "    vector: null        # base vector, e.g. AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H\n"
        "    kev: null\n"
        "    fixed_by: ?         # the update whose builds the record names as first fixed\n"
        '    affected: ["2016", "2019", "SE"]   # as the record lists them\n'
        "    sources: [cvelist, msrc]\n"
        "    examples:\n"
        "      - {build: <first fixed build>, expect: patched}\n"
        "      - {build: <the build before it>, expect: vulnerable}\n"
    )


__all__ = ["Report", "Upstream", "csv_rows", "cve_skeleton", "diff", "read_upstream"]
