"""One self-test over every data file exwatch ships.

Detection knowledge lives as data (build table, CVE catalogue, fingerprints, log rules,
sector keywords).  Every entry carries examples; each data module exposes a `selftest()`
that checks schema, internal consistency and every example, and returns a CheckResult.
The notify message templates are checked the same way (rendered around hostile strings).
This module only lists them: add a line to CHECKS when you add a data file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class CheckResult:
    name: str
    examples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.examples > 0


# "module:function" of each data check, imported lazily.
CHECKS: tuple[str, ...] = (
    "exwatch.knowledge.consistency:selftest",
    "exwatch.fingerprint:selftest",
    "exwatch.plausibility:selftest",
    "exwatch.enrich.sectors:selftest",
    "exwatch.hostcheck.rules:selftest",
    "exwatch.hostcheck.files:selftest",
    "exwatch.checks.indicators:selftest",
    "exwatch.checks.behaviour:selftest",
    "exwatch.notify.selftest:selftest",
)


def run_all() -> list[CheckResult]:
    results: list[CheckResult] = []
    for spec in CHECKS:
        module_name, func_name = spec.split(":")
        func: Callable[[], CheckResult] = getattr(importlib.import_module(module_name), func_name)
        results.append(func())
    return results


__all__ = ["CHECKS", "CheckResult", "run_all"]
