"""Scoring scan records against the lab's ground truth.

Used by the demo (to show the scanner got the lab right) and by the end-to-end test (to
prove it).  A record is right when its status, what it says the host is (on-prem Exchange,
Exchange Online, a suspect, nothing), build, every build seen, precision, product, end of
life and CVE verdicts are what the ground truth says a perfect passive scanner reports,
and a suspect names at least the checks the lab's honeypot or impostor fails.
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
        if record.get("cves") != want:
            diff = [c for c in want if (record.get("cves") or {}).get(c) != want[c]]
            problems.append(f"verdicts differ for {', '.join(diff)}")
    if exchange.get("product") != truth.get("product"):
        problems.append(f"product {exchange.get('product')} != {truth.get('product')}")
    return problems


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
