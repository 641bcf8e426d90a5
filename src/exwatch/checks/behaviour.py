"""The behavioural checks of `knowledge/checks.yaml`, and how each answer is read.

Pure: `load()` reads the definitions once; `read(check, answer, control)` turns what the
server did with the check's request (and, where the request was aborted, with a control
request) into a `Reading`.  `selftest()` runs every example (registered in
exwatch.selftest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from exwatch.checks import document
from exwatch.checks.answer import Answer, failed
from exwatch.errors import DataError

if TYPE_CHECKING:
    from exwatch.selftest import CheckResult

FILE = "checks.yaml"
_CVE = re.compile(r"CVE-\d{4}-\d{4,7}")


class State(StrEnum):
    """What one behavioural check saw."""

    VULNERABLE = "vulnerable"  # the vulnerable code path answered
    NOT_VULNERABLE = "not-vulnerable"  # Exchange answered, without the sign
    MITIGATED = "mitigated"  # the request was aborted while the host answers otherwise
    NOT_MITIGATED = "not-mitigated"  # Exchange answered the request the mitigation aborts
    INCONCLUSIVE = "inconclusive"  # something else answered, or the host stopped answering
    FAILED = "failed"  # the request got no answer for another reason


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()

    def line(self) -> str:
        """The request as documentation shows it."""
        extra = "".join(f"; {k}: {v}" for k, v in self.headers)
        return f"{self.method} {self.path}{extra}"


@dataclass(frozen=True, slots=True)
class Signal:
    header: str | None
    pattern: re.Pattern[str]

    def seen(self, answer: Answer) -> str | None:
        """The text that shows the signal, or None."""
        if self.header is not None:
            for name, value in answer.headers:
                if name == self.header and self.pattern.search(value):
                    return f"{name}: {value[:120]}"
            return None
        m = self.pattern.search(answer.text())
        return None if m is None else m.group(0)[:160]


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    probe: str
    title: str
    cves: tuple[str, ...]
    mitigation_id: str | None
    mitigation_cves: tuple[str, ...]
    request: Request
    control: Request | None
    vulnerable: tuple[Signal, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Signs:
    """What shows that Exchange's own IIS answered (not a proxy or WAF in front)."""

    headers: frozenset[str]
    values: tuple[Signal, ...]

    def seen(self, answer: Answer) -> str | None:
        for name, value in answer.headers:
            if name in self.headers:
                return f"{name}: {value[:80]}"
        for signal in self.values:
            if found := signal.seen(answer):
                return found
        return None


@dataclass(frozen=True, slots=True)
class Reading:
    """One check's result: its state, the answer's status (or network outcome) and the
    evidence it was read from."""

    check: str
    state: State
    status: str
    evidence: str
    cves: tuple[str, ...]

    @classmethod
    def from_json(cls, check: str, data: dict[str, Any]) -> Reading:
        return cls(
            check,
            State(data.get("state", State.FAILED.value)),
            str(data.get("status", "")),
            str(data.get("evidence", "")),
            tuple(data.get("cves") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "status": self.status,
            "evidence": self.evidence,
            "cves": list(self.cves),
        }


@dataclass(frozen=True, slots=True)
class Definitions:
    checks: tuple[Check, ...]
    signs: Signs
    sources: dict[str, dict[str, str]]
    doc: dict[str, Any]

    def by_id(self, check_id: str) -> Check:
        for check in self.checks:
            if check.id == check_id:
                return check
        raise KeyError(check_id)


def _rx(raw: object, where: str) -> re.Pattern[str]:
    if not isinstance(raw, str) or not raw:
        raise DataError(f"{FILE} {where}: a pattern must be a non-empty string")
    try:
        return re.compile(raw, re.IGNORECASE)
    except re.error as exc:
        raise DataError(f"{FILE} {where}: bad pattern {raw!r}: {exc}") from exc


def _signal(raw: object, where: str) -> Signal:
    if not isinstance(raw, dict):
        raise DataError(f"{FILE} {where}: a signal is {{header, regex}} or {{body}}")
    if "body" in raw:
        return Signal(None, _rx(raw["body"], where))
    header = raw.get("header")
    if not isinstance(header, str) or header != header.lower():
        raise DataError(f"{FILE} {where}: header names are lower case")
    return Signal(header, _rx(raw.get("regex"), where))


def _request(raw: object, where: str) -> Request:
    if not isinstance(raw, dict) or raw.get("method") not in ("GET", "HEAD"):
        raise DataError(f"{FILE} {where}: a request is a GET or HEAD (checks send no body)")
    path = raw.get("path")
    if not isinstance(path, str) or not re.fullmatch(r"/[\x21-\x7e]*", path):
        raise DataError(f"{FILE} {where}: path must be printable ASCII starting with /")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict):
        raise DataError(f"{FILE} {where}: headers must be a mapping")
    for name in headers:
        if str(name).lower() in ("authorization", "content-length", "transfer-encoding"):
            raise DataError(f"{FILE} {where}: a check never sends {name}")
    return Request(raw["method"], path, tuple((str(k), str(v)) for k, v in headers.items()))


def _cves(raw: object, where: str) -> tuple[str, ...]:
    items = list(raw) if isinstance(raw, list) else []
    if raw is not None and not isinstance(raw, list):
        raise DataError(f"{FILE} {where}: cves must be a list")
    if not all(isinstance(c, str) and _CVE.fullmatch(c) for c in items):
        raise DataError(f"{FILE} {where}: CVE ids look like CVE-2021-26855")
    return tuple(items)


def _check(raw: object, sources: dict[str, Any]) -> Check:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise DataError(f"{FILE}: every check needs an id")
    where = f"check {raw['id']}"
    for key in ("probe", "title"):
        if not isinstance(raw.get(key), str):
            raise DataError(f"{FILE} {where}: needs `{key}`")
    mitigation = raw.get("mitigation")
    if mitigation is not None and (
        not isinstance(mitigation, dict) or not isinstance(mitigation.get("id"), str)
    ):
        raise DataError(f"{FILE} {where}: mitigation is {{id, cves}}")
    refs = document.cited(raw, sources, f"{FILE} {where}")
    control = raw.get("control")
    if mitigation is not None and control is None:
        raise DataError(f"{FILE} {where}: a check that reads a mitigation needs a control")
    signals = raw.get("vulnerable") or []
    if not isinstance(signals, list):
        raise DataError(f"{FILE} {where}: vulnerable must be a list of signals")
    cves = _cves(raw.get("cves"), where)
    if signals and not cves:
        raise DataError(f"{FILE} {where}: a check with vulnerable signals names its cves")
    return Check(
        id=raw["id"],
        probe=raw["probe"],
        title=raw["title"],
        cves=cves,
        mitigation_id=None if mitigation is None else mitigation["id"],
        mitigation_cves=() if mitigation is None else _cves(mitigation.get("cves"), where),
        request=_request(raw.get("request"), f"{where} request"),
        control=None if control is None else _request(control, f"{where} control"),
        vulnerable=tuple(_signal(s, f"{where} vulnerable") for s in signals),
        sources=refs,
    )


def parse(text: str) -> Definitions:
    doc, sources = document.load(text, FILE)
    signs = doc.get("exchange_signs") or {}
    if not isinstance(signs, dict):
        raise DataError(f"{FILE}: exchange_signs must be a mapping")
    checks = tuple(_check(c, sources) for c in doc.get("checks") or [])
    if not checks:
        raise DataError(f"{FILE}: no checks")
    ids = [c.id for c in checks]
    if len(ids) != len(set(ids)):
        raise DataError(f"{FILE}: check ids repeat")
    return Definitions(
        checks,
        Signs(
            frozenset(str(h).lower() for h in signs.get("headers") or ()),
            tuple(_signal(s, "exchange_signs") for s in signs.get("header_values") or ()),
        ),
        dict(sources),
        doc,
    )


def data_text() -> str:
    return resources.files("exwatch.knowledge").joinpath(FILE).read_text("utf-8")


@lru_cache(maxsize=1)
def load() -> Definitions:
    """The shipped definitions, parsed once."""
    return parse(data_text())


def _outcome(answer: Answer) -> str:
    return str(answer.status) if answer.answered else (answer.error or "no answer")


def read(
    check: Check, answer: Answer, control: Answer | None = None, defs: Definitions | None = None
) -> Reading:
    """What the server's reaction says (see checks.yaml for the rules)."""
    signs = (load() if defs is None else defs).signs

    def reading(state: State, evidence: str, cves: tuple[str, ...]) -> Reading:
        return Reading(check.id, state, _outcome(answer), evidence, cves)

    if not answer.answered:
        if answer.aborted and check.mitigation_id is not None:
            if control is not None and control.answered:
                return reading(
                    State.MITIGATED,
                    f"{check.mitigation_id}: the request was aborted "
                    f"({answer.error}) while a request without it was answered "
                    f"({control.status})",
                    check.mitigation_cves,
                )
            why = "no control request" if control is None else _outcome(control)
            return reading(
                State.INCONCLUSIVE,
                f"aborted ({answer.error}), and the control request failed too ({why})",
                (),
            )
        return reading(State.FAILED, f"{answer.error}: {answer.error_text[:160]}", ())
    for signal in check.vulnerable:
        if found := signal.seen(answer):
            return reading(State.VULNERABLE, found, check.cves)
    sign = signs.seen(answer)
    if sign is None:
        return reading(
            State.INCONCLUSIVE,
            f"answered {answer.status} without a sign of Exchange's IIS (a proxy in front?)",
            (),
        )
    if check.vulnerable:
        return reading(State.NOT_VULNERABLE, f"answered {answer.status} ({sign})", check.cves)
    return reading(State.NOT_MITIGATED, f"answered {answer.status} ({sign})", check.mitigation_cves)


def _example_answer(raw: dict[str, Any]) -> Answer:
    headers = raw.get("headers") or {}
    return Answer(
        status=int(raw["status"]),
        headers=tuple((str(k).lower(), str(v)) for k, v in headers.items()),
        body=str(raw.get("body", "")).encode("latin-1"),
    )


def selftest() -> CheckResult:
    """Every example of checks.yaml gives its reading; every source is used."""
    from exwatch.selftest import CheckResult

    result = CheckResult("behavioural checks")
    try:
        defs = parse(data_text())
    except DataError as exc:
        result.problems.append(str(exc))
        return result
    used: set[str] = set()
    for raw in defs.doc["checks"]:
        check = defs.by_id(raw["id"])
        used.update(check.sources)
        examples = raw.get("examples") or []
        if not examples:
            result.problems.append(f"check {check.id}: no examples")
        for ex in examples:
            result.examples += 1
            if ex.get("aborted"):
                answer = failed("connection-reset", "reset by peer")
                control = (
                    Answer(status=200) if ex.get("control") == "answered" else failed("io-timeout")
                )
            else:
                answer, control = _example_answer(ex["response"]), None
            got = read(check, answer, control, defs).state.value
            if got != ex.get("reading"):
                result.problems.append(f"check {check.id}: example read {got}, not {ex['reading']}")
    unused = sorted(set(defs.sources) - used)
    if unused:
        result.problems.append(f"sources nothing uses: {', '.join(unused)}")
    return result


__all__ = ["Check", "Definitions", "Reading", "Request", "State", "load", "read", "selftest"]
