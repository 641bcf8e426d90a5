"""Block-level prefilter: which lines of a log block could any rule of a kind match.

Every rule yields "needle sets" derived from its data: sets of lower-case literals of which
at least one must occur in a line for the rule to match.  They come from the rule's own
`needles` (`Rule.matches` rejects lines without them, so they are exact by construction)
and from its condition tree, where `regex` and `like` values are read with the standard
library's regex parser for the literals every match must contain.

The derived needles are sound only for "plain" lines: ASCII, no NUL and no CSV quoting,
where every field value is a substring of the raw line and case folding is plain ASCII.
The block scanner (`parsers/blockscan.py`) sends every other line through the full
per-line path, so no needle here can hide a hit there.  One needle set per rule (the most
selective) feeds a multi-pattern search over the lower-cased block (`ahocorasick_rs`);
a hit line then has to pass all needle sets of at least one rule before it is parsed.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick_rs

from exwatch.hostcheck.conditions import DEFAULT_EXCHANGE_PATH, Rule, like_to_regex

try:  # the standard library's regex parser (a private module, present since 3.11)
    _sre_parse: Any = importlib.import_module("re._parser")
    _sre: Any = importlib.import_module("re._constants")
    ASSERT, BRANCH, LITERAL = _sre.ASSERT, _sre.BRANCH, _sre.LITERAL
    MAX_REPEAT, MIN_REPEAT, SUBPATTERN = _sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.SUBPATTERN
except (ImportError, AttributeError):  # pragma: no cover - regex needles off, still sound
    _sre_parse = None
    ASSERT = BRANCH = LITERAL = MAX_REPEAT = MIN_REPEAT = SUBPATTERN = object()

NeedleSet = frozenset[str]
# Literals a line may hold verbatim: printable ASCII without the CSV quote.
_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"'}
_MAX_ALTERNATIVES = 64
_MIN_NEEDLE = 3
_MAX_COMBOS = 16


@dataclass(frozen=True, slots=True)
class _Info:
    """What a regex node tells: the exact strings it matches (if few and literal), the
    literal prefixes every match starts with, and needle sets every match satisfies."""

    exact: frozenset[str] | None
    prefix: frozenset[str] | None
    required: tuple[NeedleSet, ...]


_NOTHING = _Info(None, None, ())


def _score(needles: NeedleSet) -> tuple[int, int]:
    # Longer shortest needle filters better; fewer needles break ties.
    return (min(len(n) for n in needles), -len(needles))


def _usable(needles: Iterable[str] | None) -> NeedleSet | None:
    if needles is None:
        return None
    found = frozenset(needles)
    if not found or any(len(n) < _MIN_NEEDLE for n in found):
        return None
    # A needle containing another one of the set adds nothing.
    return frozenset(n for n in found if not any(m != n and m in n for m in found))


def _best(sets: Iterable[NeedleSet]) -> NeedleSet | None:
    usable = [s for s in sets if s]
    return max(usable, key=_score) if usable else None


def _opt(needles: NeedleSet | None) -> tuple[NeedleSet, ...]:
    return (needles,) if needles else ()


def _cross(left: frozenset[str], right: frozenset[str]) -> frozenset[str] | None:
    if len(left) * len(right) > _MAX_ALTERNATIVES:
        return None
    return frozenset(a + b for a in left for b in right)


def _literal_char(code: int) -> str | None:
    ch = chr(code)
    return ch.lower() if ch in _PLAIN else None


def _node(op: Any, av: Any) -> _Info:
    if op is LITERAL:
        ch = _literal_char(av)
        return _Info(frozenset({ch}), frozenset({ch}), ()) if ch else _NOTHING
    if op is SUBPATTERN:
        return _seq(av[-1])
    if op is BRANCH:
        alts = [_seq(alt) for alt in av[1]]
        exact: frozenset[str] | None = None
        if all(a.exact is not None for a in alts):
            exact = frozenset().union(*(a.exact or () for a in alts))
        prefixes = [a.exact if a.exact is not None else a.prefix for a in alts]
        prefix = None if any(p is None for p in prefixes) else frozenset().union(*prefixes)  # type: ignore[arg-type]
        bests = [_best((*a.required, *_opt(_usable(a.exact)))) for a in alts]
        required: tuple[NeedleSet, ...] = ()
        if all(b is not None for b in bests):
            union = _usable(frozenset().union(*bests))  # type: ignore[arg-type]
            required = (union,) if union else ()
        if exact is not None and len(exact) > _MAX_ALTERNATIVES:
            exact = None
        return _Info(exact, prefix, required)
    if op in (MAX_REPEAT, MIN_REPEAT):
        low, high, body = av
        if low < 1:
            return _NOTHING
        inner = _seq(body)
        sets = list(inner.required)
        whole = _usable(inner.exact) or _usable(inner.prefix)
        if whole:
            sets.append(whole)
        exact = inner.exact if low == high == 1 else None
        prefix = inner.exact if inner.exact is not None else inner.prefix
        return _Info(exact, prefix, tuple(sets))
    if op is ASSERT:  # positive look-ahead/behind: its text is in the searched string
        inner = _seq(av[1])
        sets = list(inner.required)
        whole = _usable(inner.exact) or _usable(inner.prefix)
        if whole:
            sets.append(whole)
        return _Info(None, None, tuple(sets))
    return _NOTHING  # classes, anchors, negative assertions, back references ...


def _seq(items: Sequence[tuple[Any, Any]]) -> _Info:
    required: list[NeedleSet] = []
    run: frozenset[str] | None = frozenset({""})  # exact strings of the current literal run
    prefix: frozenset[str] | None = None  # of the whole sequence, once known
    started = False  # the sequence's prefix is settled once a non-exact node is met
    for op, av in items:
        info = _node(op, av)
        required.extend(info.required)
        if info.exact is not None and run is not None:
            joined = _cross(run, info.exact)
            if joined is not None:
                run = joined
                continue
        # The run ends here; its strings, extended by this node's prefixes, are needles.
        ends = run
        if run is not None and info.prefix is not None:
            ends = _cross(run, info.prefix) or run
        if ends is not None and (use := _usable(ends)):
            required.append(use)
        if not started:
            prefix = ends if ends is not None and ends != frozenset({""}) else None
            started = True
        run = frozenset({""}) if info.exact is None else info.exact
    if not started:
        # Every node was exact: the sequence matches exactly `run`.
        if run is not None and (use := _usable(run)):
            required.append(use)
        return _Info(run, run, tuple(required))
    if run is not None and (use := _usable(run)):
        required.append(use)
    return _Info(None, prefix, tuple(required))


def regex_needles(pattern: str) -> tuple[NeedleSet, ...]:
    """Needle sets that every match of `pattern` (searched case-insensitively in an ASCII
    string) satisfies; () when the pattern promises no literal."""
    if _sre_parse is None:
        return ()
    try:
        parsed = _sre_parse.parse(pattern, 0)
    except (re.error, RecursionError, TypeError, ValueError):
        return ()
    info = _seq(list(parsed))
    return tuple(s for s in info.required if s)


def _literal_needles(values: Iterable[str]) -> NeedleSet | None:
    """One needle per literal (the literal itself when plain, else its longest plain run)."""
    out: set[str] = set()
    for value in values:
        low = value.lower()
        runs = re.findall(r"[ -!#-~]{3,}", low) if low.isascii() else []
        if not runs:
            return None
        out.add(max(runs, key=len))
    return _usable(out)


def condition_needles(cond: Any, variables: dict[str, str]) -> tuple[NeedleSet, ...]:
    """Needle sets implied by a rule condition (all must hold for a matching plain line)."""
    if not isinstance(cond, dict):
        return ()
    if "all" in cond:
        return tuple(s for part in cond["all"] for s in condition_needles(part, variables))
    if "any" in cond:
        return _any_of([condition_needles(part, variables) for part in cond["any"]])
    if "not" in cond:
        return ()
    name = str(cond.get("field", ""))
    if name.startswith("_"):  # meta fields are not in the line
        return ()
    ops = [k for k in cond if k != "field"]
    if len(ops) != 1:
        return ()
    op = ops[0]
    raw = cond[op]
    values = [str(v) for v in raw] if isinstance(raw, list) else [str(raw)]
    for var, val in variables.items():
        values = [v.replace("{" + var + "}", val) for v in values]
    if op in ("equals", "in", "contains", "startswith", "endswith"):
        if "" in values:
            return ()
        found = _literal_needles(values)
        return (found,) if found else ()
    if op == "contains_all":
        sets = [_literal_needles([v]) for v in values if v]
        return tuple(s for s in sets if s)
    if op == "like":
        return _any_of([regex_needles(like_to_regex(v).pattern) for v in values])
    if op == "regex":
        return _any_of([regex_needles(v) for v in values])
    return ()


def _any_of(alternatives: Sequence[tuple[NeedleSet, ...]]) -> tuple[NeedleSet, ...]:
    """Needle sets of "one of these holds": one set from each alternative, united (every
    such union is necessary), for a bounded number of combinations."""
    if not alternatives or any(not sets for sets in alternatives):
        return ()
    combos: list[frozenset[str]] = [frozenset()]
    for sets in alternatives:
        ranked = sorted(set(sets), key=_score, reverse=True)[:4]
        combos = [c | s for c in combos for s in ranked][:_MAX_COMBOS]
    out = [u for c in combos if (u := _usable(c))]
    return tuple(dict.fromkeys(out))


def rule_needle_sets(
    rule: Rule, condition: Any, variables: dict[str, str]
) -> tuple[NeedleSet, ...]:
    sets = list(condition_needles(condition, variables))
    if rule.needles is not None and (own := _usable(rule.needles)):
        sets.append(own)
    return tuple(dict.fromkeys(sets))


class KindPrefilter:
    """The candidate-line test for one record kind under one set of rules."""

    def __init__(self, per_rule: Sequence[tuple[NeedleSet, ...]]) -> None:
        self.per_rule = list(per_rule)
        # Without needles for some rule every line is a candidate (no search at all).
        self.every_line = any(not sets for sets in per_rule)
        chosen = [_best(sets) or frozenset() for sets in per_rule]
        self.needles: tuple[str, ...] = tuple(sorted(_usable(frozenset().union(*chosen)) or ()))
        # Search needle -> rules it may stand for (a rule's needle contains it).
        self._rules_of: list[tuple[int, ...]] = [
            tuple(i for i, best in enumerate(chosen) if any(m in n for n in best))
            for m in self.needles
        ]
        # Every needle set of a rule must hit; the most selective sets are tried first.
        self._groups: list[tuple[tuple[bytes, ...], ...]] = [
            tuple(
                tuple(n.encode("ascii") for n in sorted(group, key=len, reverse=True))
                for group in sorted(sets, key=_score, reverse=True)
            )
            for sets in per_rule
        ]
        self._automaton = (
            ahocorasick_rs.BytesAhoCorasick(
                [n.encode("ascii") for n in self.needles],
                implementation=ahocorasick_rs.Implementation.DFA,
            )
            if self.needles and not self.every_line
            else None
        )

    def hits(self, lowered: bytes) -> list[tuple[int, int]]:
        """(offset, needle number) of needle hits in a lower-cased block, by offset."""
        if self._automaton is None:
            return []
        return [
            (start, which) for which, start, _ in self._automaton.find_matches_as_indexes(lowered)
        ]

    def line_ok(self, lowered_line: bytes, needles: Iterable[int] | None = None) -> bool:
        """Could any rule match this lower-cased plain line?  `needles`: the search needles
        found in it (None: try every rule)."""
        if self.every_line:
            return True
        if needles is None:
            candidates: Iterable[int] = range(len(self._groups))
        else:
            found: set[int] = set()
            for which in needles:
                found.update(self._rules_of[which])
            candidates = sorted(found)
        for rule in candidates:
            for group in self._groups[rule]:
                for needle in group:
                    if needle in lowered_line:
                        break
                else:
                    break  # this set has no hit: the rule cannot match
            else:
                return True
        return False

    @property
    def matches_nothing(self) -> bool:
        return not self.per_rule


# (rule ids, exchange path) -> prefilter: one per kind and copy, built on first use.
_CACHE: dict[tuple[tuple[str, ...], str], KindPrefilter] = {}


def prefilter_for(
    rules: Sequence[Rule], exchange_path: str = DEFAULT_EXCHANGE_PATH
) -> KindPrefilter:
    """The prefilter of a kind's rules (as passed to the checker)."""
    key = (tuple(f"{r.id}:{r.condition!r}" for r in rules), exchange_path)
    found = _CACHE.get(key)
    if found is None:
        variables = {"exchange_path": exchange_path}
        found = KindPrefilter([rule_needle_sets(r, r.condition, variables) for r in rules])
        _CACHE[key] = found
    return found


__all__ = [
    "KindPrefilter",
    "condition_needles",
    "prefilter_for",
    "regex_needles",
    "rule_needle_sets",
]
