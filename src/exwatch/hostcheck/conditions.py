"""Compiled log rules: the condition language over typed records, and the Rule type.

A rule names the record kinds it reads (`applies_to`) and a condition tree:

    all: [cond, ...] | any: [cond, ...] | not: cond
    {field: NAME, <op>: VALUE}   ops: equals, in, contains, contains_all, startswith,
                                      endswith, like, regex, present, cidr

Matching is case-insensitive (PowerShell `-like` and Select-String are); `like` is
PowerShell's wildcard (`*`, `?`, `[...]`, whole string).  `field: raw` is the whole line.
`{exchange_path}` in a value is replaced by the Exchange install path of the copy.
`first_per_file: true` reports only the first hit per file (Select-String -List).
`parity: true` marks Test-ProxyLogon's own conditions; `decode: rps_cat` attaches the
decoded X-Rps-CAT token to each finding.

For speed each rule gets "needles" computed from its condition: lower-case literals of
which at least one must occur in the raw line for the rule to be able to match; most lines
are rejected by a substring test before any field is looked at.  The self-test checks that
every `match` example passes its needles, so a wrong needle cannot hide a hit.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exwatch.errors import DataError
from exwatch.hostcheck.records import Kind, Record

DEFAULT_EXCHANGE_PATH = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\"
SEVERITIES = ("info", "low", "medium", "high", "critical")
_OPS = (
    "equals",
    "in",
    "contains",
    "contains_all",
    "startswith",
    "endswith",
    "like",
    "regex",
    "present",
    "cidr",
)
_NEEDLE_CHARS = re.compile(r"[a-z0-9._~/@:$\-#<>()\\']{3,}")

Predicate = Callable[[Record], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    cve: str | None
    technique: str
    severity: str
    description: str
    sources: tuple[str, ...]
    applies_to: tuple[Kind, ...]
    predicate: Predicate
    needles: frozenset[str] | None
    parity: bool = False
    first_per_file: bool = False
    decode: str | None = None
    stage: str = (
        "exploit"  # timeline lane: recon, ssrf, exploit, file-write, webshell, persistence, cleanup
    )
    examples: Mapping[str, Any] = field(default_factory=dict)
    # The condition as written (with `{exchange_path}` resolved): the block prefilter
    # derives its needles from it.
    condition: Any = None

    def matches(self, record: Record) -> bool:
        if self.needles is not None:
            low = record.lower
            if not any(n in low for n in self.needles):
                return False
        return self.predicate(record)


# -- condition compiler ----------------------------------------------------------------------


def like_to_regex(pattern: str) -> re.Pattern[str]:
    """PowerShell -like wildcard -> compiled case-insensitive whole-string regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _needle_of(literal: str) -> str | None:
    """Longest run of plain characters of a literal (it must appear in the raw line)."""
    runs = _NEEDLE_CHARS.findall(literal.lower())
    return max(runs, key=len) if runs else None


def _subst(value: str, variables: Mapping[str, str]) -> str:
    for name, val in variables.items():
        value = value.replace("{" + name + "}", val)
    return value


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def compile_condition(
    cond: Any, variables: Mapping[str, str], where: str
) -> tuple[Predicate, frozenset[str] | None]:
    if not isinstance(cond, dict) or not cond:
        raise DataError(f"{where}: condition must be a mapping, got {cond!r}")
    if "all" in cond or "any" in cond:
        key = "all" if "all" in cond else "any"
        parts = cond[key]
        if not isinstance(parts, list) or not parts:
            raise DataError(f"{where}: `{key}` needs a non-empty list")
        compiled = [compile_condition(p, variables, where) for p in parts]
        preds = [c[0] for c in compiled]
        if key == "all":
            known = [n for _, n in compiled if n is not None]
            # The child whose shortest needle is longest filters best.
            best = max(known, key=lambda ns: min(len(x) for x in ns)) if known else None

            def all_pred(rec: Record) -> bool:
                return all(p(rec) for p in preds)

            return all_pred, best
        needles: set[str] | None = set()
        for _, n in compiled:
            if n is None or needles is None:
                needles = None
            else:
                needles |= n

        def any_pred(rec: Record) -> bool:
            return any(p(rec) for p in preds)

        return any_pred, frozenset(needles) if needles is not None else None
    if "not" in cond:
        inner, _ = compile_condition(cond["not"], variables, where)

        def not_pred(rec: Record) -> bool:
            return not inner(rec)

        return not_pred, None
    return _compile_leaf(cond, variables, where)


def _compile_leaf(
    cond: dict[str, Any], variables: Mapping[str, str], where: str
) -> tuple[Predicate, frozenset[str] | None]:
    name = cond.get("field")
    ops = [k for k in cond if k != "field"]
    if not isinstance(name, str) or len(ops) != 1 or ops[0] not in _OPS:
        raise DataError(
            f"{where}: a leaf is {{field: NAME, <one of {', '.join(_OPS)}>: VALUE}}: {cond!r}"
        )
    op = ops[0]
    fname = name.lower()
    raw_value = cond[op]
    values = [_subst(v, variables) for v in _as_list(raw_value)]
    low = [v.lower() for v in values]
    meta = fname.startswith("_")
    needles: frozenset[str] | None = None

    def needles_from(literals: Iterable[str]) -> frozenset[str] | None:
        if meta:
            return None
        found = [_needle_of(x) for x in literals]
        return None if any(f is None for f in found) else frozenset(f for f in found if f)

    pred: Predicate
    if op == "cidr":
        try:
            networks = [ipaddress.ip_network(v, strict=False) for v in values]
        except ValueError as exc:
            raise DataError(f"{where}: bad network: {exc}") from exc

        def pred(rec: Record) -> bool:
            try:
                addr = ipaddress.ip_address(rec.get(fname).strip())
            except ValueError:
                return False
            return any(addr in net for net in networks if addr.version == net.version)

    elif op == "present":
        want = bool(raw_value)

        def pred(rec: Record) -> bool:
            return bool(rec.get(fname)) == want

    elif op in ("equals", "in"):
        wanted = frozenset(low)
        needles = needles_from(values) if "" not in wanted else None

        def pred(rec: Record) -> bool:
            return rec.get(fname).lower() in wanted

    elif op == "contains":
        needles = needles_from(values)

        def pred(rec: Record) -> bool:
            v = rec.get(fname).lower()
            return any(x in v for x in low)

    elif op == "contains_all":
        best = max(values, key=lambda x: len(_needle_of(x) or ""))
        needles = needles_from([best])

        def pred(rec: Record) -> bool:
            v = rec.get(fname).lower()
            return all(x in v for x in low)

    elif op == "startswith":
        needles = needles_from(values)
        prefixes = tuple(low)

        def pred(rec: Record) -> bool:
            return rec.get(fname).lower().startswith(prefixes)

    elif op == "endswith":
        needles = needles_from(values)
        suffixes = tuple(low)

        def pred(rec: Record) -> bool:
            return rec.get(fname).lower().endswith(suffixes)

    elif op == "like":
        regexes = [like_to_regex(v) for v in values]
        pieces = [max(re.split(r"[*?\[\]]", v), key=len) for v in values]
        needles = needles_from(pieces)

        def pred(rec: Record) -> bool:
            v = rec.get(fname)
            return any(r.fullmatch(v) for r in regexes)

    else:  # regex
        try:
            compiled_res = [re.compile(v, re.IGNORECASE) for v in values]
        except re.error as exc:
            raise DataError(f"{where}: bad regex: {exc}") from exc

        def pred(rec: Record) -> bool:
            v = rec.get(fname)
            return any(r.search(v) for r in compiled_res)

    return pred, needles


__all__ = [
    "DEFAULT_EXCHANGE_PATH",
    "SEVERITIES",
    "Predicate",
    "Rule",
    "compile_condition",
    "like_to_regex",
]
