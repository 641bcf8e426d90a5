"""Exchange's own health-probe traffic (`data/health_probes.yaml`): never a finding.

The checker asks `is_health_probe` only about records some rule matched, so the cost is
nil on ordinary lines; what it leaves out is counted in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from exwatch.errors import DataError
from exwatch.hostcheck.conditions import Predicate, compile_condition
from exwatch.hostcheck.datafile import load_yaml
from exwatch.hostcheck.records import Kind, Record


@dataclass(frozen=True, slots=True)
class HealthProbe:
    id: str
    description: str
    applies_to: tuple[Kind, ...]
    predicate: Predicate
    examples: dict[str, Any]


def build_probes(entries: Any) -> tuple[HealthProbe, ...]:
    if not isinstance(entries, list):
        raise DataError("health_probes.yaml: top level must be a list")
    out: list[HealthProbe] = []
    for pos, entry in enumerate(entries):
        where = f"health probe #{pos}"
        try:
            kinds = tuple(Kind(k) for k in entry["applies_to"])
            pred, _ = compile_condition(entry["condition"], {}, where)
            examples = entry["examples"]
            if not examples.get("match") or "no_match" not in examples:
                raise DataError(f"{where}: examples need `match` and `no_match`")
            out.append(
                HealthProbe(str(entry["id"]), str(entry["description"]), kinds, pred, examples)
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where}: {exc!r}") from exc
    return tuple(out)


@cache
def load_probes() -> tuple[HealthProbe, ...]:
    return build_probes(load_yaml("health_probes.yaml"))


def probes_for(kind: Kind) -> Sequence[HealthProbe]:
    return [p for p in load_probes() if kind in p.applies_to]


def is_health_probe(record: Record, probes: Sequence[HealthProbe]) -> bool:
    return any(p.predicate(record) for p in probes)


__all__ = ["HealthProbe", "build_probes", "is_health_probe", "load_probes", "probes_for"]
