"""Build verdicts and behavioural readings, merged: a separate source, never a hidden one.

Pure.  The build says what the code should be (`assess`); a behavioural check says what
the server did.  Per CVE a reading speaks for:

| build verdict | reading `vulnerable` | `not-vulnerable` | `mitigated` |
|---|---|---|---|
| undetermined | vulnerable (settled) | patched (settled) | mitigated |
| vulnerable | vulnerable | vulnerable, **conflict** | mitigated |
| patched | vulnerable, **conflict** | patched | patched |
| not-affected | vulnerable, **conflict** | not-affected | not-affected |
| none (build hidden) | vulnerable | none | mitigated |

A `not-vulnerable` reading settles nothing for a CVE the catalogue does not judge for the
build at all (`unjudged`: an out-of-support line it does not assess, a build it cannot
place): "this server does not answer like a vulnerable one" is not "patched" there.
A conflict keeps `vulnerable` (what a notification must act on: the server either showed
the vulnerable code path, or its build has no fix and something else may have stopped the
request) and is listed with both sources.  `not-mitigated`, `inconclusive` and `failed`
readings change nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exwatch.checks.behaviour import Reading, State
from exwatch.model import Verdict

_VULN, _PATCHED = Verdict.VULNERABLE.value, Verdict.PATCHED.value
_UNDET, _NA = Verdict.UNDETERMINED.value, Verdict.NOT_AFFECTED.value
_MITIGATED = Verdict.MITIGATED.value


@dataclass(slots=True)
class Merged:
    cves: dict[str, str]
    settled: dict[str, dict[str, str | None]] = field(default_factory=dict)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    basis: dict[str, str] = field(default_factory=dict)  # for CVEs a reading made vulnerable

    def to_json(self) -> dict[str, Any]:
        return {"settled": self.settled, "conflicts": self.conflicts}


# How the bases of verdicts the catalogue does not really judge begin (exwatch.assess).
_UNJUDGED = ("not covered", "not assessed", "build not placed", "unknown product")


def unjudged(basis: Mapping[str, str]) -> frozenset[str]:
    """The CVEs whose verdict basis (an assessment's `basis`) says the catalogue does not
    judge this build for them."""
    return frozenset(cve for cve, text in basis.items() if text.startswith(_UNJUDGED))


def merge(
    build_cves: Mapping[str, str],
    readings: Iterable[Reading],
    skip: Collection[str] = (),
    *,
    no_build: bool = False,
) -> Merged:
    """Merge each reading into the build's verdicts (see the module table); `skip`: the
    build's `unjudged` CVEs.  `no_build`: the host showed no build, so it has no verdicts;
    a `vulnerable` or `mitigated` reading then gives one (as if the build said
    undetermined), a `not-vulnerable` one cannot (patched and not affected look alike)."""
    out = Merged(dict(build_cves))
    for reading in readings:
        if reading.state not in (State.VULNERABLE, State.NOT_VULNERABLE, State.MITIGATED):
            continue
        for cve in reading.cves:
            build = build_cves.get(cve)
            shown: str | None = build
            if build is None:
                if not no_build or reading.state is State.NOT_VULNERABLE:
                    continue  # a CVE the catalogue does not judge for this host
                build = _UNDET
            now = out.cves.get(cve)
            new = _merged(build, reading.state)
            if new == _PATCHED and cve in skip:
                continue
            if new is None:
                continue
            denied = build in (_PATCHED, _NA) and reading.state is State.VULNERABLE
            unseen = build == _VULN and reading.state is State.NOT_VULNERABLE
            if denied or unseen:
                out.conflicts.append(_conflict(cve, build, reading, new))
            if new != now:
                out.cves[cve] = new
                out.settled[cve] = {
                    "build": shown,
                    "verdict": new,
                    "check": reading.check,
                    "reading": reading.state.value,
                }
            if new == _VULN and reading.state is State.VULNERABLE:
                out.basis[cve] = f"behaviour: {reading.check} saw {reading.evidence}"[:300]
    return out


def _merged(build: str, state: State) -> str | None:
    if state is State.VULNERABLE:
        return _VULN
    if state is State.NOT_VULNERABLE:
        return _PATCHED if build == _UNDET else (None if build != _VULN else _VULN)
    if state is State.MITIGATED and build in (_VULN, _UNDET):
        return _MITIGATED
    return None


def _conflict(cve: str, build: str, reading: Reading, kept: str) -> dict[str, str]:
    return {
        "cve": cve,
        "build": build,
        "check": reading.check,
        "reading": reading.state.value,
        "evidence": reading.evidence,
        "verdict": kept,
    }


__all__ = ["Merged", "merge", "unjudged"]
