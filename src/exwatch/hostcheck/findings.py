"""One finding of a host check: which rule, where, when, from whom, with what evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EVIDENCE_LIMIT = 4000  # characters of a raw line kept as evidence
SEVERITY_ORDER = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(slots=True)
class Finding:
    rule: str
    cve: str | None
    severity: str
    description: str
    stage: str
    file: str
    line: int | None
    timestamp: str | None
    evidence: str
    kind: str  # record kind, or "file" for web-folder findings
    parity: bool = False
    source_ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "cve": self.cve,
            "rule": self.rule,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "timestamp": self.timestamp,
            "evidence": self.evidence,
            "kind": self.kind,
            "stage": self.stage,
            "test_proxylogon": self.parity,
            "source_ip": self.source_ip,
            "description": self.description,
            "details": self.details,
        }


__all__ = ["EVIDENCE_LIMIT", "SEVERITY_ORDER", "Finding"]
