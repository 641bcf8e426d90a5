"""The attack as a story: first SSRF, first file write, first web-shell use, who came from where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exwatch.hostcheck.findings import Finding

STAGES = (
    "recon",
    "initial-access",
    "ssrf",
    "exploit",
    "file-write",
    "webshell",
    "execution",
    "credential-access",
    "persistence",
    "exfiltration",
    "defense-evasion",
    "cleanup",
)


def build_timeline(findings: Sequence[Finding]) -> dict[str, Any]:
    """Findings must be sorted by time; findings without a timestamp come last."""
    firsts: dict[str, dict[str, Any]] = {}
    per_rule_first: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, Any]] = {}
    for f in findings:
        entry = {
            "timestamp": f.timestamp,
            "rule": f.rule,
            "cve": f.cve,
            "file": f.file,
            "line": f.line,
            "source_ip": f.source_ip,
        }
        if f.stage not in firsts and f.timestamp:
            firsts[f.stage] = entry
        if f.rule not in per_rule_first:
            per_rule_first[f.rule] = entry | {"stage": f.stage, "count": 0}
        per_rule_first[f.rule]["count"] += 1
        if f.source_ip:
            src = sources.setdefault(
                f.source_ip, {"first": f.timestamp, "last": f.timestamp, "findings": 0, "rules": []}
            )
            src["findings"] += 1
            if f.timestamp:
                src["first"] = min(filter(None, (src["first"], f.timestamp)))
                src["last"] = max(filter(None, (src["last"], f.timestamp)))
            if f.rule not in src["rules"]:
                src["rules"].append(f.rule)
    events = sorted(per_rule_first.values(), key=lambda e: e["timestamp"] or "9999")
    return {
        "first_ssrf": firsts.get("ssrf"),
        "first_exploit": firsts.get("exploit"),
        "first_file_write": firsts.get("file-write"),
        "first_webshell_use": firsts.get("webshell"),
        "first_execution": firsts.get("execution"),
        "stages": {s: firsts[s] for s in STAGES if s in firsts},
        "events": events,
        "source_addresses": dict(sorted(sources.items(), key=lambda kv: kv[1]["first"] or "9999")),
    }


__all__ = ["STAGES", "build_timeline"]
