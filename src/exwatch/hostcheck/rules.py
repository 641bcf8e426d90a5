"""Log rules as data (`data/log_rules.yaml`): loading, and their self-test.

The condition language and the compiled Rule live in `conditions.py`; the self-test also
checks every `match` example against the block scanner's prefilter (`prefilter.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from exwatch.errors import DataError
from exwatch.hostcheck.conditions import (
    DEFAULT_EXCHANGE_PATH,
    SEVERITIES,
    Rule,
    compile_condition,
    like_to_regex,
)
from exwatch.hostcheck.datafile import load_yaml
from exwatch.hostcheck.prefilter import KindPrefilter, prefilter_for
from exwatch.hostcheck.records import Kind, Record

_REQUIRED = (
    "id",
    "cve",
    "technique",
    "severity",
    "description",
    "sources",
    "applies_to",
    "condition",
    "examples",
)


# -- loading ------------------------------------------------------------------------------------


def build_rules(entries: Any, variables: Mapping[str, str]) -> list[Rule]:
    if not isinstance(entries, list):
        raise DataError("log rules: top level must be a list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for pos, entry in enumerate(entries):
        where = f"log rule #{pos}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: not a mapping")
        missing = [k for k in _REQUIRED if k not in entry]
        if missing:
            raise DataError(f"{where} ({entry.get('id')}): missing {', '.join(missing)}")
        rid = str(entry["id"])
        where = f"log rule {rid}"
        if rid in seen:
            raise DataError(f"{where}: duplicate id")
        seen.add(rid)
        if entry["severity"] not in SEVERITIES:
            raise DataError(f"{where}: severity must be one of {SEVERITIES}")
        try:
            kinds = tuple(Kind(k) for k in entry["applies_to"])
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from exc
        extra = entry.get("needles")
        pred, needles = compile_condition(entry["condition"], variables, where)
        if extra is not None:
            needles = frozenset(str(n).lower() for n in extra)
        examples = entry["examples"]
        if (
            not isinstance(examples, dict)
            or not examples.get("match")
            or "no_match" not in examples
        ):
            raise DataError(f"{where}: examples need `match` (non-empty) and `no_match`")
        rules.append(
            Rule(
                id=rid,
                cve=entry["cve"],
                technique=str(entry["technique"]),
                severity=str(entry["severity"]),
                description=str(entry["description"]).strip(),
                sources=tuple(str(s) for s in entry["sources"]),
                applies_to=kinds,
                predicate=pred,
                needles=needles,
                parity=bool(entry.get("parity", False)),
                first_per_file=bool(entry.get("first_per_file", False)),
                decode=entry.get("decode"),
                stage=str(entry.get("stage", "exploit")),
                examples=examples,
                condition=entry["condition"],
            )
        )
    return rules


@cache
def load_rules(exchange_path: str = DEFAULT_EXCHANGE_PATH) -> tuple[Rule, ...]:
    """The shipped log rules, compiled for one Exchange install path."""
    return tuple(build_rules(load_yaml("log_rules.yaml"), {"exchange_path": exchange_path}))


def rules_by_kind(rules: Iterable[Rule]) -> dict[Kind, list[Rule]]:
    out: dict[Kind, list[Rule]] = {k: [] for k in Kind}
    for rule in rules:
        for kind in rule.applies_to:
            out[kind].append(rule)
    return out


# -- self-test ----------------------------------------------------------------------------------


def example_records(rule: Rule, example: Any) -> tuple[Kind, list[Record]]:
    """Parse one example through the real parser of its kind (default `#Fields:` header)."""
    return parse_example(rule.applies_to[0], example)


def parse_example(default: Kind, example: Any) -> tuple[Kind, list[Record]]:
    """An example line (or {kind, line}) as records, through the real parser of its kind."""
    from exwatch.hostcheck.parsers import PARSERS

    if isinstance(example, dict):
        kind = Kind(example["kind"])
        text = str(example["line"])
    else:
        kind = default
        text = str(example)
    records, _ = PARSERS[kind].parse_text(text)
    return kind, records


def selftest() -> Any:
    from exwatch.selftest import CheckResult

    result = CheckResult(name="hostcheck log rules")
    try:
        rules = load_rules()
    except DataError as exc:
        result.problems.append(str(exc))
        return result
    for rule in rules:
        for want, key in ((True, "match"), (False, "no_match")):
            for example in rule.examples.get(key) or []:
                result.examples += 1
                kind, records = example_records(rule, example)
                short = str(example)[:80]
                if len(records) != 1:
                    result.problems.append(
                        f"{rule.id}: example parsed to {len(records)} records: {short}"
                    )
                    continue
                if kind not in rule.applies_to:
                    result.problems.append(f"{rule.id}: example kind {kind} not in applies_to")
                rec = records[0]
                got = rule.matches(rec)
                if want and not rule.predicate(rec):
                    result.problems.append(f"{rule.id}: should match: {short}")
                elif want and not got:
                    result.problems.append(
                        f"{rule.id}: needles {sorted(rule.needles or ())} reject a match: {short}"
                    )
                elif not want and got:
                    result.problems.append(f"{rule.id}: should not match: {short}")
                if want and not _block_prefilter_passes(rule, kind, rec.raw):
                    result.problems.append(f"{rule.id}: block prefilter rejects a match: {short}")
    _health_selftest(result)
    return result


def _health_selftest(result: Any) -> None:
    """Health-probe examples: every `match` is a probe, every `no_match` is not."""
    from exwatch.hostcheck.health import load_probes

    try:
        probes = load_probes()
    except DataError as exc:
        result.problems.append(str(exc))
        return
    for probe in probes:
        for want, key in ((True, "match"), (False, "no_match")):
            for example in probe.examples.get(key) or []:
                result.examples += 1
                kind, records = parse_example(probe.applies_to[0], example)
                if len(records) != 1 or kind not in probe.applies_to:
                    result.problems.append(f"{probe.id}: example is not one {kind} record")
                elif probe.predicate(records[0]) != want:
                    result.problems.append(f"{probe.id}: {key} example fails: {example!s:.80}")


def kind_prefilter(kind: Kind, exchange_path: str = DEFAULT_EXCHANGE_PATH) -> KindPrefilter:
    """The prefilter of every shipped rule that reads `kind`."""
    rules = [r for r in load_rules(exchange_path) if kind in r.applies_to]
    return prefilter_for(rules, exchange_path)


def _block_prefilter_passes(rule: Rule, kind: Kind, raw: str) -> bool:
    """Would the block scanner's needle search and line test keep this plain line?"""
    line = raw.encode("utf-8", errors="replace")
    if not line.isascii() or b"\x00" in line or b'"' in line:
        return True  # never a plain line: always parsed in full
    prefilter = prefilter_for([rule])
    if prefilter.every_line:
        return True
    lowered = line.lower()
    found = [which for _, which in prefilter.hits(lowered)]
    return bool(found) and prefilter.line_ok(lowered, found)


__all__ = [
    "DEFAULT_EXCHANGE_PATH",
    "Rule",
    "build_rules",
    "compile_condition",
    "kind_prefilter",
    "like_to_regex",
    "load_rules",
    "load_yaml",
    "parse_example",
    "rules_by_kind",
    "selftest",
]
