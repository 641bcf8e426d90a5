"""Sector vocabulary and the keyword rules engine (data: data/sector_rules.yaml).

Rules guess a sector from organisation evidence when no constituency entry matched.  The first
rule in file order that matches any evidence wins; within a rule, evidence is tried in the order
`orgs.evidence_from_record` returns it (certificate CN first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from exwatch import yamldoc
from exwatch.enrich.orgs import Evidence, fold_text, normalise_hostname, suffixes_of
from exwatch.errors import DataError
from exwatch.selftest import CheckResult

Confidence = Literal["high", "medium", "low"]
CONFIDENCES: tuple[Confidence, ...] = ("high", "medium", "low")
RULE_KINDS = ("domain-suffix", "keyword")

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_KEYWORD = re.compile(r"^\*?[a-z0-9]+\*?$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_DOMAIN_TOKEN_SPLIT = re.compile(r"[._-]+")
_NAME_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Sector:
    id: str
    description: str
    parent: str | None


@dataclass(frozen=True, slots=True)
class SectorRule:
    id: str
    sector: str
    kind: str
    confidence: Confidence
    languages: tuple[str, ...]
    values: tuple[str, ...]
    match_examples: tuple[str, ...]
    no_match_examples: tuple[str, ...]
    pattern: re.Pattern[str] | None  # keyword rules: full-match over one token

    def matches(self, evidence: Evidence) -> bool:
        if self.kind == "domain-suffix":
            return evidence.is_domain and any(s in self.values for s in suffixes_of(evidence.value))
        assert self.pattern is not None
        return any(self.pattern.fullmatch(token) for token in tokens(evidence))


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule: SectorRule
    evidence: Evidence


def tokens(evidence: Evidence) -> list[str]:
    if evidence.is_domain:
        return [t for t in _DOMAIN_TOKEN_SPLIT.split(evidence.value) if t]
    return [t for t in _NAME_TOKEN_SPLIT.split(fold_text(evidence.value)) if t]


def example_evidence(text: str) -> Evidence:
    """A self-test example as evidence: a DNS name if it is one, else an organisation name."""
    name = None if " " in text else normalise_hostname(text)
    if name is not None:
        return Evidence("cert_cn", name, None, "example")
    return Evidence("cert_org", text, None, "example")


class SectorRules:
    """The vocabulary and the ordered rule list from one rules file."""

    def __init__(self, sectors: dict[str, Sector], rules: list[SectorRule], source: str) -> None:
        self.sectors = sectors
        self.rules = rules
        self.source = source

    @classmethod
    def load(cls, path: Path | None = None) -> SectorRules:
        if path is None:
            ref = resources.files("exwatch.enrich").joinpath("data/sector_rules.yaml")
            text, source = ref.read_text(encoding="utf-8"), "sector_rules.yaml"
        else:
            try:
                text, source = path.read_text(encoding="utf-8"), str(path)
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: cannot read sector rules: {exc}") from exc
        try:
            doc = yamldoc.parse(text)
        except yaml.YAMLError as exc:
            raise DataError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(doc, Mapping):
            raise DataError(f"{source}: expected a mapping with 'sectors' and 'rules'")
        sectors = _parse_sectors(doc.get("sectors"), source)
        raw_rules = doc.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            raise DataError(f"{source}: 'rules' must be a non-empty list")
        rules: list[SectorRule] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_rules):
            rule = _parse_rule(raw, index, sectors, source)
            if rule.id in seen:
                raise DataError(f"{source}: duplicate rule id {rule.id!r}")
            seen.add(rule.id)
            rules.append(rule)
        return cls(sectors, rules, source)

    def is_sector(self, value: str) -> bool:
        return value in self.sectors

    def match(self, evidence: Iterable[Evidence]) -> RuleMatch | None:
        """The first rule (file order) matching any evidence, with the first evidence it matched."""
        items = list(evidence)
        best: RuleMatch | None = None
        best_index = len(self.rules)
        for ev in items:
            hit = self._first_rule(ev)
            if hit is not None and hit < best_index:
                best_index, best = hit, RuleMatch(self.rules[hit], ev)
        return best

    def _first_rule(self, evidence: Evidence) -> int | None:
        return _first_rule_cached(self, evidence.is_domain, evidence.value)

    def winner_for_text(self, text: str) -> SectorRule | None:
        found = self.match([example_evidence(text)])
        return found.rule if found else None


@lru_cache(maxsize=131072)
def _first_rule_cached(rules: SectorRules, is_domain: bool, value: str) -> int | None:
    # Evidence values repeat across records (one certificate on many hosts): cache per value.
    ev = Evidence("cert_cn" if is_domain else "cert_org", value, None, "cache")
    for index, rule in enumerate(rules.rules):
        if rule.matches(ev):
            return index
    return None


def _parse_sectors(raw: object, source: str) -> dict[str, Sector]:
    if not isinstance(raw, Mapping) or not raw:
        raise DataError(f"{source}: 'sectors' must be a non-empty mapping")
    sectors: dict[str, Sector] = {}
    for key, body in raw.items():
        if not isinstance(key, str) or not _ID.match(key):
            raise DataError(f"{source}: sector id {key!r} is not kebab-case")
        if not isinstance(body, Mapping) or not isinstance(body.get("description"), str):
            raise DataError(f"{source}: sector {key!r} needs a description")
        parent = body.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise DataError(f"{source}: sector {key!r}: parent must be a sector id")
        sectors[key] = Sector(key, body["description"], parent)
    for sector in sectors.values():
        if sector.parent is not None and sector.parent not in sectors:
            raise DataError(f"{source}: sector {sector.id!r}: unknown parent {sector.parent!r}")
    for required in ("other", "unknown"):
        if required not in sectors:
            raise DataError(f"{source}: the vocabulary must contain {required!r}")
    return sectors


def _str_list(raw: object, what: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str) and v for v in raw):
        raise DataError(f"{what} must be a non-empty list of strings")
    return tuple(raw)


def _parse_rule(raw: object, index: int, sectors: dict[str, Sector], source: str) -> SectorRule:
    where = f"{source}: rule #{index + 1}"
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: expected a mapping")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise DataError(f"{where}: id {rule_id!r} is not kebab-case")
    where = f"{source}: rule {rule_id}"
    sector, kind, confidence = raw.get("sector"), raw.get("kind"), raw.get("confidence")
    if sector not in sectors or sector == "unknown":
        raise DataError(f"{where}: sector {sector!r} is not in the vocabulary")
    if kind not in RULE_KINDS:
        raise DataError(f"{where}: kind must be one of {', '.join(RULE_KINDS)}")
    if confidence not in CONFIDENCES:
        raise DataError(f"{where}: confidence must be one of {', '.join(CONFIDENCES)}")
    languages = _str_list(raw.get("languages"), f"{where}: languages")
    if not all(_LANGUAGE.match(lang) for lang in languages):
        raise DataError(f"{where}: languages must be ISO 639 codes such as nl, fr, de, en")
    values = _str_list(raw.get("values"), f"{where}: values")
    pattern: re.Pattern[str] | None = None
    if kind == "domain-suffix":
        normal = []
        for value in values:
            name = value.lower().strip(".")
            if name != value or not re.fullmatch(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*", name):
                raise DataError(f"{where}: {value!r} is not a lower-case DNS suffix")
            normal.append(name)
        values = tuple(normal)
    else:
        folded = tuple(fold_text(v) for v in values)
        for value in folded:
            if not _KEYWORD.match(value):
                raise DataError(
                    f"{where}: keyword {value!r} must be letters/digits with optional *"
                )
        values = folded
        pattern = re.compile("|".join(_keyword_regex(v) for v in values))
    examples = raw.get("examples")
    if not isinstance(examples, Mapping):
        raise DataError(f"{where}: examples with 'match' and 'no_match' lists are required")
    return SectorRule(
        id=rule_id,
        sector=str(sector),
        kind=str(kind),
        confidence=confidence,
        languages=languages,
        values=values,
        match_examples=_str_list(examples.get("match"), f"{where}: examples.match"),
        no_match_examples=_str_list(examples.get("no_match"), f"{where}: examples.no_match"),
        pattern=pattern,
    )


def _keyword_regex(keyword: str) -> str:
    core = re.escape(keyword.strip("*"))
    head = "[a-z0-9]*" if keyword.startswith("*") else ""
    tail = "[a-z0-9]*" if keyword.endswith("*") else ""
    return f"(?:{head}{core}{tail})"


@lru_cache(maxsize=1)
def default_rules() -> SectorRules:
    return SectorRules.load()


def sector_vocabulary() -> dict[str, Sector]:
    return default_rules().sectors


def selftest(path: Path | None = None) -> CheckResult:
    """Check the rules file: schema, vocabulary and every example (see the file's header)."""
    result = CheckResult("enrich/sector_rules.yaml" if path is None else str(path))
    try:
        rules = SectorRules.load(path)
    except DataError as exc:
        result.problems.append(str(exc))
        return result
    for rule in rules.rules:
        for text in rule.match_examples:
            result.examples += 1
            ev = example_evidence(text)
            if not rule.matches(ev):
                result.problems.append(f"{rule.id}: example {text!r} does not match")
                continue
            winner = rules.winner_for_text(text)
            if winner is not rule:
                other = winner.id if winner else None
                result.problems.append(f"{rule.id}: example {text!r} is claimed by {other}")
        for text in rule.no_match_examples:
            result.examples += 1
            if rule.matches(example_evidence(text)):
                result.problems.append(f"{rule.id}: counter-example {text!r} matches")
    return result


def rules_summary(rules: SectorRules) -> dict[str, Any]:
    return {
        "sectors": sorted(rules.sectors),
        "rules": [{"id": r.id, "sector": r.sector, "kind": r.kind} for r in rules.rules],
    }


__all__ = [
    "CONFIDENCES",
    "Confidence",
    "RuleMatch",
    "Sector",
    "SectorRule",
    "SectorRules",
    "default_rules",
    "example_evidence",
    "rules_summary",
    "sector_vocabulary",
    "selftest",
    "tokens",
]
