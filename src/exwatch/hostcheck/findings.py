"""What a host check reports: findings, per-kind coverage, and the overall verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exwatch.hostcheck.records import FileStats, Kind

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


# Every kind a full triage copy should hold; "missing" is reported against this list.
EXPECTED_KINDS: dict[str, str] = {
    str(Kind.HTTPPROXY): "Exchange HttpProxy logs (Logging/HttpProxy/*)",
    str(Kind.IIS): "IIS W3C logs (inetpub/logs/LogFiles/W3SVC*)",
    str(Kind.ECP_SERVER): "ECP Server logs (Logging/ECP/Server)",
    str(Kind.OAB_GENERATOR): "OABGenerator logs (Logging/OABGeneratorLog)",
    str(Kind.CMDLET): "cmdlet logs (Logging/CmdletInfra/*/Cmdlet)",
    str(Kind.EVTX): "event logs (Application.evtx, MSExchange Management.evtx)",
    "web-folders": "web folders (aspnet_client, FrontEnd/HttpProxy/owa/auth, ecp/auth)",
}


@dataclass(slots=True)
class KindCoverage:
    kind: str
    files: int = 0
    bytes: int = 0
    records: int = 0
    bad_lines: int = 0
    first_timestamp: str = ""
    last_timestamp: str = ""
    gave_up_files: int = 0
    error_files: int = 0

    def add(self, stats: FileStats) -> None:
        self.files += 1
        self.bytes += stats.size
        self.records += stats.records
        self.bad_lines += stats.bad_lines + stats.truncated_lines
        self.gave_up_files += int(stats.gave_up)
        self.error_files += int(stats.error is not None)
        for ts in (stats.first_timestamp, stats.last_timestamp):
            if ts and (not self.first_timestamp or ts < self.first_timestamp):
                self.first_timestamp = ts
            if ts and (not self.last_timestamp or ts > self.last_timestamp):
                self.last_timestamp = ts

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "records": self.records,
            "bad_lines": self.bad_lines,
            "first_timestamp": self.first_timestamp or None,
            "last_timestamp": self.last_timestamp or None,
            "gave_up_files": self.gave_up_files,
            "error_files": self.error_files,
        }


@dataclass(slots=True)
class HostcheckResult:
    root: str
    exchange_path: str
    parity_only: bool
    since: str | None
    findings: list[Finding] = field(default_factory=list)
    kinds: dict[str, KindCoverage] = field(default_factory=dict)
    files: list[FileStats] = field(default_factory=list)
    httpproxy_folders: dict[str, int] = field(default_factory=dict)
    web_folders: dict[str, bool] = field(default_factory=dict)
    web_files_scanned: int = 0
    total_files: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    file_errors: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        present = {k for k, cov in self.kinds.items() if cov.files}
        if any(self.web_folders.values()):
            present.add("web-folders")
        return [k for k in EXPECTED_KINDS if k not in present]

    @property
    def status(self) -> str:
        """findings | clean | empty (no log of any kind and no web folder: nothing was checked)."""
        if self.findings:
            return "findings"
        if len(self.missing) == len(EXPECTED_KINDS):
            return "empty"
        return "clean"

    def sorted_findings(self) -> list[Finding]:
        return sorted(
            self.findings, key=lambda f: (f.timestamp or "9999", f.file, f.line or 0, f.rule)
        )

    def to_json(self) -> dict[str, Any]:
        from exwatch.hostcheck.timeline import build_timeline

        return {
            "schema_version": 1,
            "status": self.status,
            "root": self.root,
            "exchange_path": self.exchange_path,
            "mode": "test-proxylogon-parity" if self.parity_only else "full",
            "since": self.since,
            "findings": [f.to_json() for f in self.sorted_findings()],
            "suppressed_findings": dict(self.suppressed),
            "coverage": {
                "kinds": {k: cov.to_json() for k, cov in sorted(self.kinds.items())},
                "missing": self.missing,
                "missing_described": [EXPECTED_KINDS[k] for k in self.missing],
                "httpproxy_folders": dict(sorted(self.httpproxy_folders.items())),
                "web_folders": dict(self.web_folders),
                "web_files_scanned": self.web_files_scanned,
                "total_files": self.total_files,
                "files": [s.to_json() for s in self.files],
                "file_errors": list(self.file_errors),
            },
            "timeline": build_timeline(self.sorted_findings()),
        }


__all__ = ["EXPECTED_KINDS", "SEVERITY_ORDER", "Finding", "HostcheckResult", "KindCoverage"]
