"""Scoring scan records against the lab's ground truth.

Used by the demo (to show the scanner got the lab right) and by the end-to-end test (to
prove it).  A record is right when its status, what it says the host is (on-prem Exchange,
Exchange Online, a suspect, nothing), build, every build seen, precision, product, end of
life and CVE verdicts are what the ground truth says a perfect passive scanner reports,
and a suspect names at least the checks the lab's honeypot or impostor fails.  Where the
scan ran opt-in checks (`--check`), an on-prem Exchange record is right only when every
asked check ran, its compromise state (with the shells' paths and shapes) and behavioural
readings are the ground truth's, and its verdicts are the build's merged with those
readings; no other record may show a check that ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exwatch.assess import assess


@dataclass(slots=True)
class Score:
    hosts: int = 0
    right: int = 0
    missing: list[str] = field(default_factory=list)
    wrong: dict[str, list[str]] = field(default_factory=dict)

    @property
    def all_right(self) -> bool:
        return self.right == self.hosts and not self.missing and not self.wrong

    def lines(self, limit: int = 20) -> list[str]:
        out = [f"{self.right}/{self.hosts} lab hosts exactly as the ground truth says"]
        if self.missing:
            out.append(f"no record for {len(self.missing)}: {', '.join(self.missing[:limit])}")
        for ip, problems in list(self.wrong.items())[:limit]:
            out.append(f"{ip}: {'; '.join(problems)}")
        return out


_WHAT = {"exchange": "exchange", "online": "exchange_online", "suspect": "suspect"}


def _problems(record: Mapping[str, Any], truth: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    status = record.get("status")
    if status != truth["expected_status"]:
        problems.append(f"status {status} != {truth['expected_status']}")
    want_key = _WHAT.get(truth["kind"])
    for key in _WHAT.values():
        if bool(record.get(key)) != (key == want_key):
            problems.append(
                f"{key} is {'set' if record.get(key) else 'empty'} for a {truth['kind']}"
            )
    if problems:
        return problems
    checks = record.get("checks")
    if want_key != "exchange":
        if checks and checks.get("ran"):
            problems.append(f"checks ran on a {truth['kind']} host: {checks['ran']}")
        if want_key is None:
            return problems
    if want_key != "exchange" and record.get("cves"):
        problems.append(f"verdicts for a {truth['kind']} host")
    if want_key == "exchange_online":
        online = record["exchange_online"]
        if online.get("product") != "Exchange Online":
            problems.append(f"product {online.get('product')} != Exchange Online")
        return problems
    if want_key == "suspect":
        missing = set(truth.get("suspect_checks") or ()) - set(
            record["suspect"].get("checks") or ()
        )
        if missing:
            problems.append(f"suspect without the checks {sorted(missing)}")
        return problems
    if checks:
        problems += _check_problems(checks, truth)
    exchange = record["exchange"]
    want_build = truth.get("build")
    got_build = exchange.get("build")
    if got_build != want_build:
        problems.append(f"build {got_build} != {want_build}")
    if list(exchange.get("builds_seen") or []) != list(truth.get("builds_seen") or []):
        problems.append(f"builds_seen {exchange.get('builds_seen')} != {truth.get('builds_seen')}")
    if got_build is not None and got_build == want_build:
        if exchange.get("precision") != ("cu" if got_build.count(".") == 2 else "su"):
            problems.append(f"precision {exchange.get('precision')} for {got_build}")
        expected = assess(got_build)
        if exchange.get("product") != expected.product:
            problems.append(f"product {exchange.get('product')} != {expected.product}")
        if exchange.get("eol") != expected.eol:
            problems.append(f"eol {exchange.get('eol')} != {expected.eol}")
        want = {c: r.verdict.value for c, r in expected.cves.items()}
        if checks:
            want = _merged(want, checks, truth, expected.to_json()["basis"])
        if record.get("cves") != want:
            diff = [c for c in want if (record.get("cves") or {}).get(c) != want[c]]
            problems.append(f"verdicts differ for {', '.join(diff)}")
    if got_build is None and want_build is None:
        # No build, no verdicts from it; a reading may still give some (checks).
        want = _merged({}, checks, truth, {}) if checks else {}
        if (record.get("cves") or {}) != want:
            problems.append(f"verdicts {record.get('cves')} != {want} (no build)")
    if exchange.get("product") != truth.get("product"):
        problems.append(f"product {exchange.get('product')} != {truth.get('product')}")
    return problems


def _check_problems(checks: Mapping[str, Any], truth: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    want = truth.get("checks") or {}
    asked = list(checks.get("asked") or [])
    if checks.get("skipped") or list(checks.get("ran") or []) != asked:
        problems.append(f"checks ran {checks.get('ran')} of {asked} ({checks.get('skipped')})")
        return problems
    if "webshells" in asked:
        got = checks.get("compromise") or {}
        exp = want["compromise"]
        if got.get("state") != exp["state"]:
            problems.append(
                f"compromise {got.get('state')} != {exp['state']} ({got.get('reason')})"
            )
        findings = got.get("findings") or []
        paths = sorted(f["path"] for f in findings)
        shapes = sorted({f["shape"] for f in findings})
        if paths != sorted(exp["paths"]) or shapes != sorted(exp["shapes"]):
            problems.append(f"shells {paths} {shapes} != {exp['paths']} {exp['shapes']}")
    for check_id, state in want["behaviour"].items():
        if check_id not in asked:
            continue
        got_state = (checks.get("behaviour") or {}).get(check_id, {}).get("state")
        if got_state != state:
            problems.append(f"{check_id} read {got_state}, not {state}")
    return problems


def _merged(
    build_cves: dict[str, str],
    checks: Mapping[str, Any],
    truth: Mapping[str, Any],
    basis: Mapping[str, str],
) -> dict[str, str]:
    """The verdicts the ground truth's readings give with the build's (the merge is
    exwatch.checks.verdicts'; its rules have tests of their own)."""
    from exwatch.checks import behaviour
    from exwatch.checks.verdicts import merge, unjudged

    defs = behaviour.load()
    readings = []
    for check_id, state in truth["checks"]["behaviour"].items():
        if check_id not in (checks.get("asked") or []):
            continue
        check = defs.by_id(check_id)
        st = behaviour.State(state)
        cves = check.mitigation_cves if st is behaviour.State.MITIGATED else check.cves
        readings.append(behaviour.Reading(check_id, st, "", "", cves))
    return merge(build_cves, readings, unjudged(basis), no_build=not build_cves).cves


def score(
    records: Iterable[Mapping[str, Any]], ground_truth: Mapping[str, Mapping[str, Any]]
) -> Score:
    """Compare one record per lab address with the ground truth (extra records are ignored)."""
    by_ip = {r.get("ip"): r for r in records}
    result = Score(hosts=len(ground_truth))
    for ip, truth in ground_truth.items():
        record = by_ip.get(ip)
        if record is None:
            result.missing.append(ip)
            continue
        problems = _problems(record, truth)
        if problems:
            result.wrong[ip] = problems
        else:
            result.right += 1
    return result


__all__ = ["Score", "score"]
