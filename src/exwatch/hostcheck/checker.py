"""Run a host check: discover, parse, apply the rules, scan the web folders, sum up coverage."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from exwatch.errors import UsageError
from exwatch.hostcheck import rps_cat
from exwatch.hostcheck.discovery import Inventory, discover
from exwatch.hostcheck.findings import EVIDENCE_LIMIT, Finding, HostcheckResult, KindCoverage
from exwatch.hostcheck.parsers import PARSERS
from exwatch.hostcheck.parsers.blockscan import BLOCK_SIZE, scan_file
from exwatch.hostcheck.parsers.fielded import FieldedParser
from exwatch.hostcheck.prefilter import prefilter_for
from exwatch.hostcheck.records import FileStats, Kind, Record
from exwatch.hostcheck.rules import DEFAULT_EXCHANGE_PATH, Rule, load_rules, rules_by_kind

# Beyond this many hits of one rule only counts are kept (a scanning campaign can leave
# millions of probe lines; the report must stay readable and memory bounded).
MAX_FINDINGS_PER_RULE = 5000

_EXCHANGE_DIR = re.compile(
    r"(?:^|/)(?:([a-z])(?:/|\$/|:/))?(.*?exchange server/v1[45])/", re.IGNORECASE
)


def parse_since(value: str) -> str:
    """`--since` as the ISO prefix records are compared with ("2021-03-01T00:00:00")."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--since: not a date or ISO timestamp: {value!r}") from exc
    if moment.tzinfo is not None:  # logs are UTC: compare in UTC
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def guess_exchange_path(inv: Inventory) -> str:
    """The install path as Windows wrote it, from a KAPE-style layout; else the default."""
    for log in inv.logs:
        found = _EXCHANGE_DIR.search(log.rel)
        if found:
            drive = (found.group(1) or "C").upper()
            tail = found.group(2).split("/")
            # Keep only the Windows part: from "Program Files" (or the drive root) on.
            lowered = [p.lower() for p in tail]
            start = lowered.index("program files") if "program files" in lowered else 0
            return drive + ":\\" + "\\".join(tail[start:]) + "\\"
    return DEFAULT_EXCHANGE_PATH


def _finding(rule: Rule, rec: Record) -> Finding:
    details: dict[str, object] = {}
    if rule.decode == "rps_cat":
        token = rps_cat.extract_token(rec.get("url_query") or rec.raw)
        if token:
            details["rps_cat"] = rps_cat.decode(token).to_json()
    if rec.kind is Kind.HTTPPROXY and rec.get("anchormailbox"):
        details["anchor_mailbox"] = rec.get("anchormailbox")
    if rec.kind is Kind.OAB_GENERATOR and rec.get("download_path"):
        details["download_path"] = rec.get("download_path")
    if rec.kind in (Kind.CMDLET, Kind.EVTX) and rec.get("cmdlet"):
        details["cmdlet"] = rec.get("cmdlet")
        details["parameters"] = rec.get("parameters")[:EVIDENCE_LIMIT]
    return Finding(
        rule=rule.id,
        cve=rule.cve,
        severity=rule.severity,
        description=rule.description,
        stage=rule.stage,
        file=rec.file,
        line=rec.line,
        timestamp=rec.timestamp or None,
        evidence=rec.raw[:EVIDENCE_LIMIT],
        kind=str(rec.kind),
        parity=rule.parity,
        source_ip=rec.get("client_ip") or None,
        details=details,
    )


def run_hostcheck(
    root: Path,
    *,
    since: str | None = None,
    exchange_path: str | None = None,
    parity_only: bool = False,
    scan_files: bool = True,
    block_scan: bool = True,
    block_size: int = BLOCK_SIZE,
) -> HostcheckResult:
    """Check a copy of a host's logs and folders.

    `block_scan=False` reads every log line by line (the reference path the block
    scanner is tested against); `block_size` is for tests.
    """
    if not root.is_dir():
        raise UsageError(f"not a folder: {root}")
    since_iso = parse_since(since) if since else None
    inv = discover(root)
    xpath = exchange_path or guess_exchange_path(inv)
    if not xpath.endswith("\\"):
        xpath += "\\"
    rules = [r for r in load_rules(xpath) if r.parity or not parity_only]
    by_kind = rules_by_kind(rules)
    result = HostcheckResult(
        root=str(root), exchange_path=xpath, parity_only=parity_only, since=since_iso,
        web_folders=dict(inv.web_folders), total_files=inv.total_files,
    )  # fmt: skip
    per_rule: dict[str, int] = {}
    for log in inv.logs:
        stats = FileStats(file=log.rel, kind=log.kind)
        meta = {"_folder": log.folder} if log.folder else None
        if log.kind is Kind.HTTPPROXY:
            name = log.folder or "(unknown folder)"
            result.httpproxy_folders[name] = result.httpproxy_folders.get(name, 0) + 1
        kind_rules = by_kind[log.kind]
        done_first: set[str] = set()
        parser = PARSERS[log.kind]
        records: Iterator[Record]
        if block_scan and isinstance(parser, FieldedParser):
            prefilter = prefilter_for(kind_rules, xpath)
            records = scan_file(parser, log.path, log.rel, stats, meta, prefilter, block_size)
        else:
            records = parser.parse_file(log.path, log.rel, stats, meta)
        for rec in records:
            if since_iso and rec.timestamp and rec.timestamp < since_iso:
                continue
            for rule in kind_rules:
                if rule.first_per_file and rule.id in done_first:
                    continue
                if not rule.matches(rec):
                    continue
                if rule.first_per_file:
                    done_first.add(rule.id)
                count = per_rule.get(rule.id, 0) + 1
                per_rule[rule.id] = count
                if count > MAX_FINDINGS_PER_RULE:
                    result.suppressed[rule.id] = result.suppressed.get(rule.id, 0) + 1
                    continue
                result.findings.append(_finding(rule, rec))
        result.files.append(stats)
        cov = result.kinds.setdefault(str(log.kind), KindCoverage(kind=str(log.kind)))
        cov.add(stats)
    if scan_files and (not parity_only or result.findings):
        # Test-ProxyLogon looks for dumps and archives only after a CVE hit; so does parity mode.
        from exwatch.hostcheck.files import check_files

        file_findings, scanned, errors = check_files(inv, parity_only=parity_only, since=since_iso)
        result.findings.extend(file_findings)
        result.web_files_scanned = scanned
        result.file_errors.extend(errors)
    return result


__all__ = ["MAX_FINDINGS_PER_RULE", "guess_exchange_path", "parse_since", "run_hostcheck"]
