"""The opt-in checks by id and group, what each sends, and how `--check` names them.

Every check is a probe of risk class `intrusive` that runs only when asked by id or group,
only on hosts fingerprinted as on-prem Exchange, and at most once per host per scan.  None
sends a payload, authenticates, writes anything or makes the server contact a third party
(docs/checks.md says exactly what each sends and how each answer is read).
"""

from __future__ import annotations

from dataclasses import dataclass

from exwatch.checks import behaviour, indicators
from exwatch.errors import UsageError

WEBSHELLS = "webshells"
WEBSHELLS_PROBE = "http-webshells"


@dataclass(frozen=True, slots=True)
class CheckInfo:
    id: str
    probe: str
    title: str
    requests: tuple[str, ...]  # what it sends, one line per kind of request


def webshell_requests() -> tuple[str, ...]:
    data = indicators.load()
    return (
        f"GET <folder>/<12 random letters>.aspx in each of the {len(data.folders)} folders "
        "the known paths live in (the baseline)",
        f"GET each of the {len(data.paths)} known shell paths of compromise.yaml "
        f"(under {', '.join(sorted({p.split('/')[1] for p in data.folders}))})",
    )


def catalogue() -> tuple[CheckInfo, ...]:
    """Every check, behavioural ones first (their order is the check stage's)."""
    out: list[CheckInfo] = []
    for check in behaviour.load().checks:
        req = check.request
        lines = [f"{req.method} {req.path}", *(f"  {k}: {v}" for k, v in req.headers)]
        if check.control is not None:
            ctl = check.control
            lines.append(f"only if that request is aborted: {ctl.method} {ctl.path}")
        lines.append("(each request on a new connection)")
        out.append(CheckInfo(check.id, check.probe, check.title, tuple(lines)))
    out.append(
        CheckInfo(
            WEBSHELLS,
            WEBSHELLS_PROBE,
            "Web shells at the paths the 2021 campaigns used, judged by shape against a baseline",
            webshell_requests(),
        )
    )
    return tuple(out)


def check_ids() -> tuple[str, ...]:
    return tuple(c.id for c in catalogue())


def groups() -> dict[str, tuple[str, ...]]:
    """Named sets of checks.  `all-safe`: every check (none is unsafe: no payload, no
    authentication, no write, no third-party contact)."""
    ids = check_ids()
    return {
        "all-safe": ids,
        "behaviour": tuple(i for i in ids if i != WEBSHELLS),
        "compromise": (WEBSHELLS,),
    }


def parse(values: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """Check ids from `--check` values (comma-separated ids or groups, repeatable), in
    catalogue order; raises UsageError for a name that is neither."""
    raw = [values] if isinstance(values, str) else list(values)
    names = [n.strip() for v in raw for n in v.split(",") if n.strip()]
    ids, named = check_ids(), groups()
    wanted: set[str] = set()
    unknown: list[str] = []
    for name in names:
        if name in named:
            wanted.update(named[name])
        elif name in ids:
            wanted.add(name)
        else:
            unknown.append(name)
    if unknown:
        raise UsageError(
            f"unknown check(s): {', '.join(unknown)} "
            f"(checks: {', '.join(ids)}; groups: {', '.join(named)})"
        )
    return tuple(i for i in ids if i in wanted)


def probe_ids(checks: tuple[str, ...]) -> tuple[str, ...]:
    by_id = {c.id: c.probe for c in catalogue()}
    return tuple(by_id[c] for c in checks)


def help_text() -> str:
    """`exwatch scan --help`'s list of every check with its requests (click prints blocks
    after a \\b line as they are)."""
    blocks = [
        "\b\nOpt-in checks (--check ID,... or a group), off by default. Each runs only on"
        " hosts\nfingerprinted as on-prem Exchange, at most once per host, under the same rate"
        " and\nconcurrency limits; none sends a payload, authenticates, writes anything or"
        " makes\nthe server contact a third party (docs/checks.md). Groups:\n"
        + "\n".join(f"  {g} = {', '.join(ids)}" for g, ids in groups().items())
    ]
    for info in catalogue():
        lines = [f"{info.id}: {info.title}"]
        lines += [f"  {r}" for r in info.requests]
        blocks.append("\b\n" + "\n".join(lines))
    return "\n\n".join(blocks)


__all__ = [
    "WEBSHELLS",
    "WEBSHELLS_PROBE",
    "CheckInfo",
    "catalogue",
    "check_ids",
    "groups",
    "help_text",
    "parse",
    "probe_ids",
]
