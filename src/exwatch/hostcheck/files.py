"""Web-folder and file checks: pages where none belong, web-shell content, dumps, archives.

Content is matched by yara-x with rules exwatch writes itself (`data/webshells.yar`);
locations and names are data too (`data/file_rules.yaml`); known-bad SHA-256 values come
from the public lists (`data/ioc_hashes.yaml`).  Files are read once, in bounded size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import yara_x

from exwatch import yamldoc
from exwatch.errors import DataError
from exwatch.hostcheck.datafile import read_text
from exwatch.hostcheck.discovery import MAX_SCAN_BYTES, Inventory
from exwatch.hostcheck.findings import Finding


@dataclass(frozen=True, slots=True)
class PathRule:
    id: str
    cve: str | None
    severity: str
    description: str
    sources: tuple[str, ...]
    path: re.Pattern[str]
    exclude: re.Pattern[str] | None
    parity: bool
    examples: dict[str, list[str]]

    def matches(self, rel: str) -> bool:
        lpath = "/" + rel.lower().lstrip("/")
        if not self.path.search(lpath):
            return False
        return not (self.exclude and self.exclude.search(lpath))


def _text(name: str) -> str:
    return read_text(name)


@cache
def load_path_rules() -> tuple[PathRule, ...]:
    entries = yamldoc.parse(_text("file_rules.yaml"))
    if not isinstance(entries, list):
        raise DataError("file_rules.yaml: top level must be a list")
    rules: list[PathRule] = []
    for entry in entries:
        try:
            rules.append(
                PathRule(
                    id=str(entry["id"]),
                    cve=entry["cve"],
                    severity=str(entry["severity"]),
                    description=str(entry["description"]),
                    sources=tuple(entry["sources"]),
                    path=re.compile(entry["path"]),
                    exclude=re.compile(entry["except"]) if entry.get("except") else None,
                    parity=bool(entry.get("parity", False)),
                    examples=entry["examples"],
                )
            )
        except (KeyError, TypeError, re.error) as exc:
            raise DataError(f"file_rules.yaml: entry {entry!r}: {exc}") from exc
    return tuple(rules)


@cache
def load_yara() -> yara_x.Rules:
    try:
        return yara_x.compile(_text("webshells.yar"))
    except yara_x.CompileError as exc:
        raise DataError(f"webshells.yar: {exc}") from exc


@cache
def load_hashes() -> dict[str, str]:
    out: dict[str, str] = {}
    for block in yamldoc.parse(_text("ioc_hashes.yaml")):
        for value in block["sha256"]:
            out[str(value).lower()] = str(block["source"])
    return out


def _meta(rule: Any) -> dict[str, Any]:
    return {str(k): v for k, v in rule.metadata}


@cache
def _scanner() -> yara_x.Scanner:
    # One scanner for the run: making one per file cost more than scanning a small page.
    scanner = yara_x.Scanner(load_yara())
    scanner.set_timeout(10)
    return scanner


def scan_bytes(data: bytes) -> list[tuple[dict[str, Any], str]]:
    """(meta, excerpt) for every yara rule matching `data`."""
    scanner = _scanner()
    out: list[tuple[dict[str, Any], str]] = []
    for rule in scanner.scan(data).matching_rules:
        excerpt = ""
        for pattern in rule.patterns:
            for m in pattern.matches:
                start = max(0, m.offset - 40)
                excerpt = data[start : m.offset + m.length + 80].decode("utf-8", errors="replace")
                break
            if excerpt:
                break
        if not excerpt:
            excerpt = data[:120].decode("utf-8", errors="replace")
        out.append((_meta(rule), excerpt))
    return out


def _file_finding(
    rule_id: str,
    cve: str | None,
    severity: str,
    description: str,
    rel: str,
    evidence: str,
    details: dict[str, Any],
    parity: bool = False,
) -> Finding:
    return Finding(
        rule=rule_id,
        cve=cve or None,
        severity=severity,
        description=description,
        stage="webshell" if rule_id.startswith(("webshell", "file-")) else "exploit",
        file=rel,
        line=None,
        timestamp=None,
        evidence=evidence,
        kind="file",
        parity=parity,
        details=details,
    )


def check_files(
    inv: Inventory,
    add: Callable[[Finding], None],
    *,
    parity_only: bool = False,
    since: str | None = None,
) -> tuple[int, list[str]]:
    """Findings over the inventory's web files, dumps and archives, each given to `add`
    (which keeps or only counts it: a web root of 100,000 pages must not make 100,000
    findings in memory); returns (files scanned, errors)."""
    errors: list[str] = []
    rules = [r for r in load_path_rules() if r.parity or not parity_only]
    candidates = list(dict.fromkeys([*inv.web_files, *inv.lsass_dumps, *inv.archives]))
    for rel in candidates:
        for rule in rules:
            if rule.matches(rel):
                add(
                    _file_finding(
                        rule.id,
                        rule.cve,
                        rule.severity,
                        rule.description,
                        rel,
                        rel,
                        {"sources": list(rule.sources)},
                        rule.parity,
                    )
                )
    if parity_only:
        return 0, errors
    hashes = load_hashes()
    scanned = 0
    for rel in inv.web_files:
        path = inv.root / rel
        try:
            size = path.stat().st_size
            if size > MAX_SCAN_BYTES:
                continue
            data = path.read_bytes()
        except OSError as exc:
            errors.append(f"{rel}: {exc.strerror or exc}")
            continue
        scanned += 1
        digest = hashlib.sha256(data).hexdigest()
        if digest in hashes:
            add(
                _file_finding(
                    "webshell-known-hash",
                    None,
                    "critical",
                    "SHA-256 of a web shell from the public March 2021 lists.",
                    rel,
                    digest,
                    {"sha256": digest, "source": hashes[digest]},
                )
            )
        for meta, excerpt in scan_bytes(data):
            add(
                _file_finding(
                    str(meta.get("id")),
                    str(meta.get("cve") or "") or None,
                    str(meta.get("severity", "high")),
                    str(meta.get("description", "")),
                    rel,
                    excerpt,
                    {"sha256": digest, "size": size, "source": meta.get("source")},
                )
            )
    return scanned, errors


def _example_bytes(text: str) -> bytes:
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:].replace(" ", ""))
    return text.encode("utf-8")


def selftest() -> Any:
    from exwatch.selftest import CheckResult

    result = CheckResult(name="hostcheck file rules (yara, paths, hashes)")
    try:
        path_rules = load_path_rules()
        load_yara()
        hashes = load_hashes()
        examples = yamldoc.parse(_text("yara_examples.yaml"))
    except DataError as exc:
        result.problems.append(str(exc))
        return result
    for rule in path_rules:
        for want, key in ((True, "match"), (False, "no_match")):
            for example in rule.examples.get(key, []):
                result.examples += 1
                if rule.matches(example) != want:
                    result.problems.append(f"{rule.id}: {key} example fails: {example}")
    yara_ids = {str(_meta(r).get("id")) for r in _all_rules()}
    with_examples = {str(e["id"]) for e in examples}
    for missing in sorted(yara_ids - with_examples):
        result.problems.append(f"yara rule {missing} has no examples")
    for entry in examples:
        for want, key in ((True, "match"), (False, "no_match")):
            for example in entry.get(key, []):
                result.examples += 1
                got = {str(m.get("id")) for m, _ in scan_bytes(_example_bytes(str(example)))}
                if (entry["id"] in got) != want:
                    result.problems.append(
                        f"{entry['id']}: {key} example fails: {str(example)[:60]}"
                    )
    for value in hashes:
        result.examples += 1
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            result.problems.append(f"ioc_hashes.yaml: not a SHA-256: {value}")
    return result


def _all_rules() -> Iterable[Any]:
    # yara-x exposes rules only through matches; compile each rule's meta via a scan of
    # nothing is not possible, so read ids from the source text instead.
    text = _text("webshells.yar")
    return [_IdOnly(m) for m in re.findall(r'^\s*id\s*=\s*"([^"]+)"', text, re.MULTILINE)]


class _IdOnly:
    def __init__(self, rid: str) -> None:
        self.metadata = (("id", rid),)


__all__ = ["check_files", "load_path_rules", "load_yara", "scan_bytes", "selftest"]
