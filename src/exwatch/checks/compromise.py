"""Is a host compromised at the known shell paths?  Judged from answers, never by status alone.

Pure.  Inputs: the server's answer to a random name in each folder of the known paths (the
baseline: what this server says about a file it does not have) and its answer to each
known path.  A known path counts as a shell only when its answer shows a known shell's
shape (`indicators.shapes_in`) that the folder's baseline does not show, and the answer is
not the baseline page again.  The host is then

- `compromised`: at least one such path (each with its shape and evidence);
- `unknown`: none, but absence cannot be shown: a baseline answered with a page (the
  server answers every path), a baseline itself shows a shell shape, a known path answered
  with a page that is neither the baseline nor a known shape, or requests failed;
- `clean-at-known-paths`: every baseline and every known path answered "not here".

"Clean" speaks for the listed paths only: a shell under another name is not seen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from exwatch.checks.answer import Answer
from exwatch.checks.indicators import Indicators, KnownPath, ShapeHit, body_digest, shapes_in

MAX_LISTED = 10  # unexplained pages and failures listed per host (counts are complete)
_VOLATILE = re.compile(r"[0-9a-f]{8,}|\d+", re.IGNORECASE)


class Compromise(StrEnum):
    COMPROMISED = "compromised"
    CLEAN = "clean-at-known-paths"
    UNKNOWN = "unknown"


def _page(answer: Answer) -> bool:
    """A 2xx answer: the server says something is there."""
    return answer.answered and answer.status is not None and 200 <= answer.status < 300


def _fingerprint(answer: Answer, name: str) -> tuple[int | None, str]:
    """What stays the same when a server answers two missing names alike: the status and
    the body without the name asked for and without numbers and hex runs (dates, request
    ids, lengths)."""
    text = answer.text()
    if name:
        text = text.replace(name, "")
    return answer.status, _VOLATILE.sub("", text)


def _same_page(a: Answer, a_name: str, b: Answer, b_name: str) -> bool:
    if not (a.answered and b.answered) or a.status != b.status:
        return False
    if _fingerprint(a, a_name) == _fingerprint(b, b_name):
        return True
    # Pages that embed more than a name (a timestamp in prose, a nonce): near enough.
    big, small = max(len(a.body), len(b.body)), min(len(a.body), len(b.body))
    return big > 0 and (big - small) / big <= 0.03


def _same_text(answer: Answer, path: str, base: Baseline) -> bool:
    """The very page the baseline got (bar the name and numbers): never a finding."""
    return answer.answered and _fingerprint(answer, _name(path)) == _fingerprint(
        base.answer, _name(base.path)
    )


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Baseline:
    folder: str
    path: str  # the random name asked for
    answer: Answer


@dataclass(slots=True)
class Judgement:
    state: Compromise
    reason: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    unexplained: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    baselines: list[dict[str, Any]] = field(default_factory=list)
    asked: int = 0
    answered: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "findings": self.findings,
            "unexplained": self.unexplained[:MAX_LISTED],
            "unexplained_count": len(self.unexplained),
            "failures": self.failures[:MAX_LISTED],
            "failure_count": len(self.failures),
            "baselines": self.baselines,
            "paths_asked": self.asked,
            "paths_answered": self.answered,
        }


def _finding(known: KnownPath, answer: Answer, hit: ShapeHit) -> dict[str, Any]:
    return {
        "path": known.path,
        "shape": hit.shape.id,
        "title": hit.shape.title,
        "confidence": hit.shape.confidence,
        "campaign": known.campaign,
        "cves": list(hit.shape.cves),
        "status": answer.status,
        "bytes": len(answer.body),
        "sha256": body_digest(answer.body),
        "evidence": hit.evidence,
        "extract": hit.extract,
        "sources": list(known.sources),
    }


def judge(
    indicators: Indicators,
    baselines: Sequence[Baseline],
    answers: Mapping[str, Answer],
) -> Judgement:
    """The host's state from its baselines and its answers per known path."""
    by_folder = {b.folder: b for b in baselines}
    base_shapes: dict[str, set[str]] = {}
    judgement = Judgement(Compromise.CLEAN, "")
    catch_all: list[str] = []
    shaped_baseline: list[str] = []
    for b in baselines:
        shapes = {h.shape.id for h in shapes_in(b.answer.status, b.answer.body, indicators)}
        base_shapes[b.folder] = shapes
        judgement.baselines.append(
            {
                "folder": b.folder,
                "path": b.path,
                "status": b.answer.status if b.answer.answered else b.answer.error,
                "page": _page(b.answer),
                "shapes": sorted(shapes),
            }
        )
        if not b.answer.answered:
            judgement.failures.append({"path": b.path, "error": b.answer.error})
        elif _page(b.answer):
            catch_all.append(b.folder)
        if shapes:
            shaped_baseline.append(b.folder)
    for known in indicators.paths:
        answer = answers.get(known.path)
        if answer is None:
            continue  # not asked (the host ran out of time): counted below
        judgement.asked += 1
        if not answer.answered:
            judgement.failures.append({"path": known.path, "error": answer.error})
            continue
        judgement.answered += 1
        base = by_folder.get(known.folder)
        hits = [
            h
            for h in shapes_in(answer.status, answer.body, indicators)
            if h.shape.id not in base_shapes.get(known.folder, set())
        ]
        if hits and not (base is not None and _same_text(answer, known.path, base)):
            judgement.findings.append(_finding(known, answer, hits[0]))
        elif base is not None and _same_page(
            answer, _name(known.path), base.answer, _name(base.path)
        ):
            continue  # what this server says about any name in that folder
        elif _page(answer):
            judgement.unexplained.append(
                {"path": known.path, "status": answer.status, "bytes": len(answer.body)}
            )
    missing = len(indicators.paths) - judgement.asked
    if judgement.findings:
        judgement.state = Compromise.COMPROMISED
        first = judgement.findings[0]
        more = f" and {len(judgement.findings) - 1} more" if len(judgement.findings) > 1 else ""
        judgement.reason = f"{first['title']} at {first['path']}{more}"
    elif catch_all:
        judgement.state = Compromise.UNKNOWN
        judgement.reason = (
            f"the server answers a page for names it lacks ({', '.join(catch_all[:3])}): "
            "absence cannot be shown"
        )
    elif shaped_baseline:
        judgement.state = Compromise.UNKNOWN
        judgement.reason = (
            f"a random name already answers like a shell in {', '.join(shaped_baseline[:3])}"
        )
    elif judgement.unexplained:
        judgement.state = Compromise.UNKNOWN
        first_path = judgement.unexplained[0]["path"]
        judgement.reason = (
            f"{len(judgement.unexplained)} known shell path(s) answer a page that matches "
            f"no known shell (first: {first_path})"
        )
    elif judgement.failures or missing:
        judgement.state = Compromise.UNKNOWN
        judgement.reason = (
            f"{len(judgement.failures)} request(s) failed, {missing} not asked: "
            "the known paths were not all seen"
        )
    else:
        judgement.reason = f"none of the {judgement.asked} known shell paths answers"
    return judgement


__all__ = ["MAX_LISTED", "Baseline", "Compromise", "Judgement", "judge"]
