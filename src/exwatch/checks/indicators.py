"""The compromise indicators of `knowledge/compromise.yaml`: known shell paths and shapes.

Pure: `load()` reads and compiles the data once; `shapes_in(status, body)` says which known
shell shapes an answer shows.  `selftest()` checks the file (registered in exwatch.selftest).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from exwatch.checks import document
from exwatch.errors import DataError

if TYPE_CHECKING:
    from exwatch.selftest import CheckResult

FILE = "compromise.yaml"
CAMPAIGNS = frozenset({"proxylogon", "proxyshell", "any"})
CONFIDENCES = frozenset({"high", "medium"})
_FLAGS = re.IGNORECASE | re.MULTILINE
# What a known path may hold: no query, no escapes, nothing a server could rewrite.
_PATH = re.compile(r"/(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class KnownPath:
    path: str
    campaign: str
    sources: tuple[str, ...]

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] + "/"


@dataclass(frozen=True, slots=True)
class ShapeHit:
    """A shape seen in one answer: the excerpt kept as evidence and what it extracted."""

    shape: Shape
    evidence: str
    extract: dict[str, str]


@dataclass(frozen=True, slots=True)
class Shape:
    id: str
    title: str
    campaign: str
    cves: tuple[str, ...]
    confidence: str
    sources: tuple[str, ...]
    status: frozenset[int] | None
    starts_with: bytes | None
    all: tuple[re.Pattern[str], ...]
    any_min: int
    any_of: tuple[re.Pattern[str], ...]
    none: tuple[re.Pattern[str], ...]
    evidence: re.Pattern[str] | None
    extract: dict[str, re.Pattern[str]] = field(default_factory=dict)

    def holds(self, status: int | None, body: bytes, text: str | None = None) -> bool:
        if self.status is not None and status not in self.status:
            return False
        if self.starts_with is not None and not body.startswith(self.starts_with):
            return False
        text = body.decode("latin-1") if text is None else text
        if not all(rx.search(text) for rx in self.all):
            return False
        if self.any_of and sum(1 for rx in self.any_of if rx.search(text)) < self.any_min:
            return False
        return not any(rx.search(text) for rx in self.none)

    def hit(self, body: bytes, text: str | None = None) -> ShapeHit:
        text = body.decode("latin-1") if text is None else text
        evidence = ""
        if self.evidence is not None and (m := self.evidence.search(text)):
            evidence = m.group(1)[:200]
        extracted = {
            name: m.group(1)[:120] for name, rx in self.extract.items() if (m := rx.search(text))
        }
        return ShapeHit(self, evidence, extracted)


@dataclass(frozen=True, slots=True)
class Indicators:
    sources: dict[str, dict[str, str]]
    paths: tuple[KnownPath, ...]
    shapes: tuple[Shape, ...]
    doc: dict[str, Any]

    @property
    def folders(self) -> tuple[str, ...]:
        """The folders the known paths live in, in first-seen order."""
        return tuple(dict.fromkeys(p.folder for p in self.paths))


def _compile(raw: object, where: str) -> re.Pattern[str]:
    if not isinstance(raw, str) or not raw:
        raise DataError(f"{FILE} {where}: a pattern must be a non-empty string")
    try:
        return re.compile(raw, _FLAGS)
    except re.error as exc:
        raise DataError(f"{FILE} {where}: bad pattern {raw!r}: {exc}") from exc


def _compile_list(raw: object, where: str) -> tuple[re.Pattern[str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise DataError(f"{FILE} {where}: must be a list of patterns")
    return tuple(_compile(p, where) for p in raw)


def _single_group(rx: re.Pattern[str], where: str) -> re.Pattern[str]:
    if rx.groups < 1:
        raise DataError(f"{FILE} {where}: needs one group (the text kept)")
    return rx


def _shape(raw: dict[str, Any], sources: dict[str, Any]) -> Shape:
    sid = raw.get("id")
    if not isinstance(sid, str) or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", sid):
        raise DataError(f"{FILE}: shape id {sid!r} is not kebab case")
    where = f"shape {sid}"
    for key in ("title", "campaign", "confidence"):
        if not isinstance(raw.get(key), str):
            raise DataError(f"{FILE} {where}: needs `{key}`")
    if raw["campaign"] not in CAMPAIGNS:
        raise DataError(f"{FILE} {where}: campaign {raw['campaign']!r} not in {sorted(CAMPAIGNS)}")
    if raw["confidence"] not in CONFIDENCES:
        raise DataError(f"{FILE} {where}: confidence must be one of {sorted(CONFIDENCES)}")
    refs = document.cited(raw, sources, f"{FILE} {where}")
    status = raw.get("status")
    if status is not None and (
        not isinstance(status, list) or not all(isinstance(s, int) for s in status)
    ):
        raise DataError(f"{FILE} {where}: status must be a list of codes")
    starts = raw.get("starts_with")
    if starts is not None and not isinstance(starts, str):
        raise DataError(f"{FILE} {where}: starts_with must be a string")
    any_raw = raw.get("any_of") or {}
    if not isinstance(any_raw, dict):
        raise DataError(f"{FILE} {where}: any_of must be {{min, patterns}}")
    any_of = _compile_list(any_raw.get("patterns"), f"{where} any_of")
    any_min = int(any_raw.get("min", 1)) if any_of else 0
    if any_of and not 1 <= any_min <= len(any_of):
        raise DataError(f"{FILE} {where}: any_of.min must be between 1 and its patterns")
    alls = _compile_list(raw.get("all"), f"{where} all")
    if starts is None and not alls and not any_of:
        raise DataError(f"{FILE} {where}: a shape needs starts_with, all or any_of")
    evidence = raw.get("evidence")
    extract_raw = raw.get("extract") or {}
    if not isinstance(extract_raw, dict):
        raise DataError(f"{FILE} {where}: extract must map names to patterns")
    return Shape(
        id=sid,
        title=raw["title"],
        campaign=raw["campaign"],
        cves=tuple(raw.get("cves") or ()),
        confidence=raw["confidence"],
        sources=refs,
        status=None if status is None else frozenset(status),
        starts_with=None if starts is None else starts.encode("latin-1"),
        all=alls,
        any_min=any_min,
        any_of=any_of,
        none=_compile_list(raw.get("none"), f"{where} none"),
        evidence=None
        if evidence is None
        else _single_group(_compile(evidence, f"{where} evidence"), f"{where} evidence"),
        extract={
            str(k): _single_group(_compile(v, f"{where} extract"), f"{where} extract {k}")
            for k, v in extract_raw.items()
        },
    )


def _paths(raw: object, sources: dict[str, Any]) -> tuple[KnownPath, ...]:
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{FILE}: `paths` must be a non-empty list of groups")
    merged: dict[str, KnownPath] = {}
    for i, group in enumerate(raw):
        where = f"paths group {i}"
        if not isinstance(group, dict):
            raise DataError(f"{FILE} {where}: must be a mapping")
        campaign = group.get("campaign")
        if campaign not in CAMPAIGNS:
            raise DataError(f"{FILE} {where}: campaign {campaign!r} not in {sorted(CAMPAIGNS)}")
        refs = document.cited(group, sources, f"{FILE} {where}")
        items = group.get("paths")
        if not isinstance(items, list) or not items:
            raise DataError(f"{FILE} {where}: needs a list of `paths`")
        seen_here: set[str] = set()
        for path in items:
            if not isinstance(path, str) or not _PATH.fullmatch(path):
                raise DataError(f"{FILE} {where}: {path!r} is not a plain URL path")
            key = path.lower()  # IIS paths are case-insensitive
            if key in seen_here:
                raise DataError(f"{FILE} {where}: {path} twice in one group")
            seen_here.add(key)
            old = merged.get(key)
            if old is None:
                merged[key] = KnownPath(path, str(campaign), refs)
            else:
                joined = tuple(dict.fromkeys(old.sources + refs))
                merged[key] = KnownPath(old.path, old.campaign, joined)
    return tuple(merged.values())


def parse(text: str) -> Indicators:
    """Parse and compile the data (raises DataError)."""
    doc, sources = document.load(text, FILE)
    shapes_raw = doc.get("shapes")
    if not isinstance(shapes_raw, list) or not shapes_raw:
        raise DataError(f"{FILE}: `shapes` must be a non-empty list")
    shapes = tuple(_shape(s, sources) for s in shapes_raw)
    ids = [s.id for s in shapes]
    if len(ids) != len(set(ids)):
        raise DataError(f"{FILE}: shape ids repeat")
    return Indicators(dict(sources), _paths(doc.get("paths"), sources), shapes, doc)


def data_text() -> str:
    return resources.files("exwatch.knowledge").joinpath(FILE).read_text("utf-8")


@lru_cache(maxsize=1)
def load() -> Indicators:
    """The shipped indicators, parsed once."""
    return parse(data_text())


def shapes_in(
    status: int | None, body: bytes, indicators: Indicators | None = None
) -> list[ShapeHit]:
    """Every known shell shape this answer shows, in data order."""
    data = load() if indicators is None else indicators
    text = body.decode("latin-1")
    return [s.hit(body, text) for s in data.shapes if s.holds(status, body, text)]


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _example_body(ex: dict[str, Any]) -> tuple[int | None, bytes]:
    body = ex.get("body", "")
    return ex.get("status"), str(body).encode("latin-1")


def selftest() -> CheckResult:
    """Every example holds for its own shape only, every counter-example for none, every
    source is used (registered in exwatch.selftest.CHECKS)."""
    from exwatch.selftest import CheckResult

    result = CheckResult("compromise indicators")
    try:
        data = parse(data_text())
    except DataError as exc:
        result.problems.append(str(exc))
        return result
    used: set[str] = set()
    for shape in data.shapes:
        used.update(shape.sources)
        raw = next(s for s in data.doc["shapes"] if s["id"] == shape.id)
        if not raw.get("examples") or not raw.get("counter_examples"):
            result.problems.append(f"shape {shape.id}: needs examples and counter_examples")
        for ex in raw.get("examples") or []:
            result.examples += 1
            status, body = _example_body(ex)
            hits = shapes_in(status, body, data)
            names = [h.shape.id for h in hits]
            if names != [shape.id]:
                result.problems.append(f"shape {shape.id}: example matched {names}")
                continue
            hit = hits[0]
            if "evidence" in ex and hit.evidence != ex["evidence"]:
                result.problems.append(
                    f"shape {shape.id}: evidence {hit.evidence!r} != {ex['evidence']!r}"
                )
            for key, want in (ex.get("extract") or {}).items():
                if hit.extract.get(key) != want:
                    result.problems.append(
                        f"shape {shape.id}: extract {key} {hit.extract.get(key)!r} != {want!r}"
                    )
        for ex in raw.get("counter_examples") or []:
            result.examples += 1
            status, body = _example_body(ex)
            if names := [h.shape.id for h in shapes_in(status, body, data)]:
                result.problems.append(f"shape {shape.id}: counter-example matched {names}")
    for ex in data.doc.get("counter_examples") or []:
        result.examples += 1
        status, body = _example_body(ex)
        if names := [h.shape.id for h in shapes_in(status, body, data)]:
            result.problems.append(f"counter-example (status {status}) matched {names}")
    for known in data.paths:
        used.update(known.sources)
    unused = sorted(set(data.sources) - used)
    if unused:
        result.problems.append(f"sources nothing uses: {', '.join(unused)}")
    return result


def shapes_table(data: Indicators | None = None) -> str:
    """The shapes as the Markdown table docs/checks.md shows (a test keeps them equal)."""
    data = load() if data is None else data
    rows = [
        "| shape | what it is | answer read | confidence | sources |",
        "|---|---|---|---|---|",
    ]
    for shape in data.shapes:
        raw = next(s for s in data.doc["shapes"] if s["id"] == shape.id)
        parts = []
        if shape.status is not None:
            parts.append("status " + "/".join(str(s) for s in sorted(shape.status)))
        if shape.starts_with is not None:
            shown = shape.starts_with.decode("latin-1").encode("unicode_escape").decode()
            parts.append(f"body starts with `{shown}`")
        if raw.get("all"):
            parts.append("all of " + ", ".join(f"`{p}`" for p in raw["all"]))
        if shape.any_of:
            any_raw = raw["any_of"]["patterns"]
            listed = ", ".join(f"`{p}`" for p in any_raw)
            parts.append(f"at least {shape.any_min} of {listed}")
        if raw.get("none"):
            parts.append("none of " + ", ".join(f"`{p}`" for p in raw["none"]))
        what = "; ".join(parts).replace("|", "\\|")
        rows.append(
            f"| `{shape.id}` | {shape.title} | {what} | {shape.confidence} | "
            f"{', '.join(shape.sources)} |"
        )
    return "\n".join(rows)


__all__ = [
    "Indicators",
    "KnownPath",
    "Shape",
    "ShapeHit",
    "body_digest",
    "load",
    "parse",
    "selftest",
    "shapes_in",
    "shapes_table",
]
