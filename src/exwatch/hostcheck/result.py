"""What a host check reports: findings, honest coverage per source and stage, the verdict.

A copy is judged by what could be read, not by what was handed over: each source (a log
family or event channel) is `read` when at least one record came out of it, `unreadable`
when files were there but gave nothing, `missing` when the copy has none.  Each stage of
an intrusion (initial access, execution, persistence, exfiltration) is covered when one
of the sources that can show it was read.  Only a copy that covers every stage and shows
nothing is `clean`; see `status`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from exwatch.hostcheck.findings import Finding
from exwatch.hostcheck.records import FileStats
from exwatch.hostcheck.timeline import build_timeline
from exwatch.untrusted import BIDI

# Source id -> what a responder would call it.  Text logs are named by format, event logs
# by channel (whether read from .evtx or from a SIEM export).
SOURCES: dict[str, str] = {
    "httpproxy": "Exchange HttpProxy logs (Logging/HttpProxy/*)",
    "iis": "IIS W3C logs (inetpub/logs/LogFiles/W3SVC*)",
    "ecp-server": "ECP Server logs (Logging/ECP/Server)",
    "oab-generator": "OABGenerator logs (Logging/OABGeneratorLog)",
    "cmdlet-logs": "Exchange cmdlet logs (Logging/CmdletInfra/*/Cmdlet)",
    "evtx:application": "Application event log",
    "evtx:msexchange-management": "MSExchange Management event log",
    "evtx:sysmon": "Sysmon event log (Microsoft-Windows-Sysmon/Operational)",
    "evtx:security": "Security event log",
    "evtx:powershell": "PowerShell Operational event log",
    "evtx:system": "System event log",
    "evtx:defender": "Defender Operational event log",
    "web-folders": "web folders (aspnet_client, FrontEnd/HttpProxy/owa/auth, ecp/auth)",
}
# Stage -> the sources that can show it (README and docs/hostcheck.md explain the choice).
STAGES: dict[str, tuple[str, ...]] = {
    "initial-access": ("httpproxy", "iis", "ecp-server", "evtx:application"),
    "execution": ("evtx:sysmon", "evtx:security", "evtx:powershell", "evtx:defender"),
    "persistence": (
        "web-folders",
        "evtx:sysmon",
        "evtx:system",
        "evtx:msexchange-management",
        "cmdlet-logs",
        "ecp-server",
        "oab-generator",
        "evtx:defender",
    ),
    "exfiltration": ("evtx:msexchange-management", "cmdlet-logs", "iis", "httpproxy"),
}
# Status -> CLI exit code (documented in `exwatch hostcheck --help` and the README).
EXIT_CODES: dict[str, int] = {
    "clean": 0,
    "findings": 1,
    "empty": 3,
    "unreadable": 3,
    "partial": 4,
}
# Beyond this many hits of one rule only counts are kept (a scanning campaign can leave
# millions of probe lines, a web root 100,000 pages; the report must stay readable and
# memory bounded).
MAX_FINDINGS_PER_RULE = 5000

# Characters JSON allows raw that terminals act on: DEL and the C1 controls (U+009B is a
# one-byte CSI on some terminals), and the direction characters (untrusted.BIDI, with the
# JavaScript line separators).  Written as JSON's own \\u escapes: the data is unchanged.
_JSON_RAW_CONTROLS = re.compile(f"[\x7f-\x9f{BIDI}]")


@dataclass(slots=True)
class Coverage:
    """Counts for one source (or record kind) over the files that fed it."""

    files: int = 0
    bytes: int = 0
    records: int = 0
    bad_lines: int = 0
    unreadable_files: int = 0
    first_timestamp: str = ""
    last_timestamp: str = ""

    def add(self, stats: FileStats, records: int, span: list[str] | None = None) -> None:
        self.files += 1
        self.bytes += stats.size
        self.records += records
        self.bad_lines += stats.bad_lines + stats.truncated_lines
        self.unreadable_files += int(stats.error is not None or stats.records == 0)
        for ts in span or (stats.first_timestamp, stats.last_timestamp):
            if ts and (not self.first_timestamp or ts < self.first_timestamp):
                self.first_timestamp = ts
            if ts and (not self.last_timestamp or ts > self.last_timestamp):
                self.last_timestamp = ts

    @property
    def state(self) -> str:
        if self.records:
            return "read"
        return "unreadable" if self.files else "missing"

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "files": self.files,
            "bytes": self.bytes,
            "records": self.records,
            "bad_lines": self.bad_lines,
            "unreadable_files": self.unreadable_files,
            "first_timestamp": self.first_timestamp or None,
            "last_timestamp": self.last_timestamp or None,
        }


@dataclass(slots=True)
class HostcheckResult:
    root: str
    exchange_path: str
    parity_only: bool
    since: str | None
    findings: list[Finding] = field(default_factory=list)
    sources: dict[str, Coverage] = field(default_factory=dict)
    kinds: dict[str, Coverage] = field(default_factory=dict)
    files: list[FileStats] = field(default_factory=list)
    httpproxy_folders: dict[str, int] = field(default_factory=dict)
    web_folders: dict[str, bool] = field(default_factory=dict)
    web_files_scanned: int = 0
    total_files: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    file_errors: list[str] = field(default_factory=list)
    health_probes: int = 0  # Managed Availability requests recognised and left out
    web_checked: bool = False  # the web folders' files were looked at (not in bare parity runs)
    max_per_rule: int = MAX_FINDINGS_PER_RULE
    _per_rule: dict[str, int] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        """Keep a finding, or only count it once its rule has `max_per_rule` of them."""
        count = self._per_rule.get(finding.rule, 0) + 1
        self._per_rule[finding.rule] = count
        if count > self.max_per_rule:
            self.suppressed[finding.rule] = self.suppressed.get(finding.rule, 0) + 1
        else:
            self.findings.append(finding)

    def add_file(self, stats: FileStats, source_hint: str | None) -> None:
        """Account one read (or unreadable) file to its sources and its record kind."""
        self.files.append(stats)
        fed = dict(stats.sources)
        if not fed and source_hint:
            fed = {source_hint: 0}
        for source, records in fed.items():
            span = stats.source_times.get(source)
            self.sources.setdefault(source, Coverage()).add(stats, records, span)
        self.kinds.setdefault(str(stats.kind), Coverage()).add(stats, stats.records)

    def source_state(self, source: str) -> str:
        if source == "web-folders":
            return "read" if self.web_checked and any(self.web_folders.values()) else "missing"
        cov = self.sources.get(source)
        return cov.state if cov is not None else "missing"

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for stage, sources in STAGES.items():
            by_state: dict[str, list[str]] = {"read": [], "unreadable": [], "missing": []}
            for source in sources:
                by_state[self.source_state(source)].append(source)
            out[stage] = {"covered": bool(by_state["read"]), **by_state}
        return out

    @property
    def missing(self) -> list[str]:
        return [s for s in SOURCES if self.source_state(s) == "missing"]

    @property
    def unreadable(self) -> list[str]:
        return [s for s in self.sources if self.source_state(s) == "unreadable"]

    @property
    def status(self) -> str:
        """findings | clean | partial | unreadable | empty.

        clean: nothing found, and every stage had a source that was read.  partial:
        nothing found in what was read, but some stage could not be seen.  unreadable: log
        files were there but nothing usable came out of them.  empty: nothing to check.
        """
        if self.findings or self.suppressed:
            return "findings"
        if not any(self.source_state(s) == "read" for s in [*self.sources, "web-folders"]):
            return "unreadable" if self.files else "empty"
        if all(stage["covered"] for stage in self.stages.values()):
            return "clean"
        return "partial"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def sorted_findings(self) -> list[Finding]:
        return sorted(
            self.findings, key=lambda f: (f.timestamp or "9999", f.file, f.line or 0, f.rule)
        )

    def to_json(self) -> dict[str, Any]:
        findings = self.sorted_findings()
        skipped = [s for s in self.files if s.bad_lines or s.truncated_lines or s.error]
        return {
            "schema_version": 2,
            "status": self.status,
            "exit_code": self.exit_code,
            "root": self.root,
            "exchange_path": self.exchange_path,
            "mode": "test-proxylogon-parity" if self.parity_only else "full",
            "since": self.since,
            "findings": [f.to_json() for f in findings],
            "suppressed_findings": dict(self.suppressed),
            "coverage": {
                "stages": self.stages,
                "sources": {
                    s: {"description": SOURCES.get(s, s), **self._source_json(s)}
                    for s in [*SOURCES, *sorted(set(self.sources) - set(SOURCES))]
                },
                "kinds": {k: cov.to_json() for k, cov in sorted(self.kinds.items())},
                "missing": self.missing,
                "missing_described": [SOURCES[s] for s in self.missing],
                "unreadable": self.unreadable,
                "skipped": {
                    "files": len(skipped),
                    "bad_lines": sum(s.bad_lines for s in self.files),
                    "truncated_lines": sum(s.truncated_lines for s in self.files),
                    "unreadable_files": [s.file for s in self.files if s.error],
                },
                "health_probes_ignored": self.health_probes,
                "httpproxy_folders": dict(sorted(self.httpproxy_folders.items())),
                "web_folders": dict(self.web_folders),
                "web_files_scanned": self.web_files_scanned,
                "total_files": self.total_files,
                "files": [s.to_json() for s in self.files],
                "file_errors": list(self.file_errors),
            },
            "timeline": build_timeline(findings),
        }

    def _source_json(self, source: str) -> dict[str, Any]:
        cov = self.sources.get(source)
        if source == "web-folders":
            present = sum(self.web_folders.values())
            return {
                **Coverage(files=present).to_json(),
                "state": self.source_state(source),
                "web_files_scanned": self.web_files_scanned,
            }
        return cov.to_json() if cov is not None else Coverage().to_json()

    def to_json_text(self) -> str:
        """The report as JSON text that is safe on a terminal: json escapes C0 controls,
        and this escapes the C1 ones (and DEL, U+2028/9) that JSON would leave raw."""
        text = json.dumps(self.to_json(), indent=1, ensure_ascii=False)
        return _JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


__all__ = [
    "EXIT_CODES",
    "MAX_FINDINGS_PER_RULE",
    "SOURCES",
    "STAGES",
    "Coverage",
    "HostcheckResult",
]
