"""Run a host check: discover, parse, apply the rules, scan the web folders, sum up coverage."""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from exwatch.errors import UsageError
from exwatch.hostcheck import rps_cat
from exwatch.hostcheck.conditions import DEFAULT_EXCHANGE_PATH, Rule
from exwatch.hostcheck.discovery import KIND_SOURCES, Inventory, LogFile, discover
from exwatch.hostcheck.files import check_files
from exwatch.hostcheck.findings import EVIDENCE_LIMIT, Finding
from exwatch.hostcheck.health import HealthProbe, is_health_probe, probes_for
from exwatch.hostcheck.parsers import PARSERS
from exwatch.hostcheck.parsers.blockscan import BLOCK_SIZE, scan_file
from exwatch.hostcheck.parsers.eventexport import EventExportParser
from exwatch.hostcheck.parsers.evtx import EvtxParser
from exwatch.hostcheck.parsers.fielded import FieldedParser
from exwatch.hostcheck.prefilter import prefilter_for
from exwatch.hostcheck.records import FileStats, Kind, Record
from exwatch.hostcheck.result import MAX_FINDINGS_PER_RULE, HostcheckResult
from exwatch.hostcheck.rules import load_rules, rules_by_kind
from exwatch.hostcheck.ruleset import RuleSet

_EXCHANGE_DIR = re.compile(
    r"(?:^|/)(?:([a-z])(?:/|\$/|:/))?(.*?exchange server/v1[45])/", re.IGNORECASE
)
_EXPORTS = EventExportParser()
_EVTX = EvtxParser()
# An EVTX inside a zip is copied out (the reader needs to seek) up to this size.
MAX_EVTX_MEMBER_BYTES = 4 << 30


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
    if rec.kind is Kind.EVTX:
        details["event"] = {
            k: rec.get(k) for k in ("channel", "provider", "event_id", "computer") if rec.get(k)
        }
    source_ip = rec.get("_source_ip")
    peer = rec.get("client_ip")
    if rec.get("x_forwarded_for"):
        # Behind a balancer the connecting address is the balancer's: keep both.
        details["forwarded_for"] = rec.get("x_forwarded_for")[:200]
        details["peer_ip"] = peer or None
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
        source_ip=source_ip or None,
        details=details,
    )


def _records(
    log: LogFile,
    stats: FileStats,
    meta: dict[str, str] | None,
    rules: Sequence[Rule],
    exchange_path: str,
    block_scan: bool,
    block_size: int,
) -> Iterator[Record]:
    if log.member is not None:
        yield from _member_records(log, stats)
        return
    if log.fmt == "json":
        yield from _EXPORTS.parse_file(log.path, log.rel, stats)
        return
    if log.fmt == "evtx":
        yield from _EVTX.parse_file(log.path, log.rel, stats)
        return
    parser = PARSERS[log.kind]
    if block_scan and isinstance(parser, FieldedParser):
        prefilter = prefilter_for(rules, exchange_path)
        yield from scan_file(parser, log.path, log.rel, stats, meta, prefilter, block_size)
    else:
        yield from parser.parse_file(log.path, log.rel, stats, meta)


def _member_records(log: LogFile, stats: FileStats) -> Iterator[Record]:
    """Records of an event log inside a zip archive, read without extracting to the copy."""
    assert log.member is not None
    try:
        with zipfile.ZipFile(log.path) as archive:
            info = archive.getinfo(log.member)
            stats.size = info.file_size
            with archive.open(info) as member:
                if log.fmt == "json":
                    yield from _EXPORTS.parse_stream(member, log.rel, stats)
                    return
                if info.file_size > MAX_EVTX_MEMBER_BYTES:
                    stats.error = f"EVTX member of {info.file_size} bytes not read"
                    return
                with tempfile.TemporaryFile(prefix="exwatch-evtx-") as copy:
                    shutil.copyfileobj(member, copy, 1 << 20)
                    copy.seek(0)
                    yield from _EVTX.parse_stream(copy, log.rel, stats)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, NotImplementedError) as exc:
        stats.error = f"cannot read from the archive: {exc}"


def run_hostcheck(
    root: Path,
    *,
    since: str | None = None,
    exchange_path: str | None = None,
    parity_only: bool = False,
    scan_files: bool = True,
    block_scan: bool = True,
    block_size: int = BLOCK_SIZE,
    max_per_rule: int = MAX_FINDINGS_PER_RULE,
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
    sets = {kind: RuleSet(kind_rules) for kind, kind_rules in by_kind.items()}
    probes = {kind: probes_for(kind) for kind in Kind}
    result = HostcheckResult(
        root=str(root), exchange_path=xpath, parity_only=parity_only, since=since_iso,
        web_folders=dict(inv.web_folders), total_files=inv.total_files,
        max_per_rule=max_per_rule,
    )  # fmt: skip
    result.file_errors.extend(inv.unreadable)
    for log in inv.logs:
        stats = FileStats(file=log.rel, kind=log.kind)
        meta = {"_folder": log.folder} if log.folder else None
        if log.kind is Kind.HTTPPROXY:
            name = log.folder or "(unknown folder)"
            result.httpproxy_folders[name] = result.httpproxy_folders.get(name, 0) + 1
        kind_rules = by_kind[log.kind]
        records = _records(log, stats, meta, kind_rules, xpath, block_scan, block_size)
        _apply(records, sets[log.kind], probes[log.kind], since_iso, result)
        if log.kind in KIND_SOURCES and stats.records:
            stats.source(KIND_SOURCES[log.kind], stats.records)
        result.add_file(stats, log.source)
    if scan_files and (not parity_only or result.findings):
        # Test-ProxyLogon looks for dumps and archives only after a CVE hit; so does parity mode.
        scanned, errors = check_files(inv, result.add, parity_only=parity_only, since=since_iso)
        result.web_files_scanned = scanned
        result.web_checked = True
        result.file_errors.extend(errors)
    return result


def _apply(
    records: Iterator[Record],
    rules: RuleSet,
    probes: Sequence[HealthProbe],
    since: str | None,
    result: HostcheckResult,
) -> None:
    done_first: set[str] = set()
    for rec in records:
        if since and rec.timestamp and rec.timestamp < since:
            continue
        probe: bool | None = None  # asked once, only of records some rule matched
        for rule in rules.matching(rec):
            if rule.first_per_file and rule.id in done_first:
                continue
            if probe is None:
                probe = is_health_probe(rec, probes)
                if probe:
                    result.health_probes += 1
            if probe:
                break
            if rule.first_per_file:
                done_first.add(rule.id)
            result.add(_finding(rule, rec))


__all__ = ["MAX_FINDINGS_PER_RULE", "guess_exchange_path", "parse_since", "run_hostcheck"]
