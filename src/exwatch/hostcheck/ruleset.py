"""The rules of one record kind, dispatched by their needles in one pass over a record.

`Rule.matches` tests each rule's needles one by one; with dozens of event rules and
millions of events that loop is the cost.  Here every rule's needles go into one
Aho-Corasick automaton: one search over the lower-cased record names the rules that can
match, and only their predicates run.  Rules without needles are always tried.  The
result is exactly `[r for r in rules if r.matches(record)]`, in rule order (a test says so).
"""

from __future__ import annotations

from collections.abc import Sequence

import ahocorasick_rs

from exwatch.hostcheck.conditions import Rule
from exwatch.hostcheck.records import Record


class RuleSet:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self._always = [i for i, r in enumerate(self.rules) if not r.needles]
        needles = sorted({n for r in self.rules if r.needles for n in r.needles})
        self._needle_rules: list[list[int]] = [
            [i for i, r in enumerate(self.rules) if r.needles and n in r.needles] for n in needles
        ]
        self._automaton = ahocorasick_rs.AhoCorasick(needles) if needles else None

    def matching(self, record: Record) -> list[Rule]:
        """The rules whose needles and predicate match `record`, in rule order."""
        picked = set(self._always)
        if self._automaton is not None:
            for which, _, _ in self._automaton.find_matches_as_indexes(
                record.lower, overlapping=True
            ):
                picked.update(self._needle_rules[which])
        return [self.rules[i] for i in sorted(picked) if self.rules[i].predicate(record)]


__all__ = ["RuleSet"]
