"""How many are already hacked, mitigated or still open: the opt-in checks' report views.

Units: a *checked host* is an on-prem Exchange result the checks ran on (`--check`);
`compromised`, `unknown` and `clean` count checked hosts by the web-shell check's state
(docs/checks.md); `share_pct` is a group's part of all compromised hosts of the scan (the
"27 % in Germany" figure); `vulnerable` and `mitigated` count checked hosts with at least
one such merged verdict among the CVEs the checks speak for.

The checks' results live in each result's record; the first report after a load turns
them into typed rows (`host_checks`, built from `results` once per change of the scan's
`answered` count, like the rollups), so the views read columns.  A store opened
read-only gets the same rows computed in memory.
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

from exwatch.errors import UsageError
from exwatch.onprem import on_prem, on_prem_sql
from exwatch.report.aggregate import country_code, pct
from exwatch.report.worldmap import country_name
from exwatch.store import Store
from exwatch.store.schema import HOST_CHECKS, HOST_CHECKS_STATE, create_table

ViewBy = Literal["country", "asn", "sector", "organisation", "cve", "host"]
VIEW_BY: tuple[ViewBy, ...] = ("country", "asn", "sector", "organisation", "cve", "host")
STATES = ("compromised", "unknown", "clean-at-known-paths")
_HAS_CHECKS = '%"ran"%'  # records whose `checks` ran something (parsed to be sure)
_GROUP_FIELDS = ("country", "asn", "as_name", "organisation", "sector")
_MAX_TEXT = 300


@lru_cache(maxsize=1)
def behaviour_cves() -> tuple[str, ...]:
    """The CVEs the behavioural checks speak for (their own and their mitigations')."""
    from exwatch.checks import behaviour

    cves: dict[str, None] = {}
    for check in behaviour.load().checks:
        cves.update(dict.fromkeys(check.cves + check.mitigation_cves))
    return tuple(sorted(cves))


@dataclass(frozen=True, slots=True)
class HostCheck:
    """One checked host as the views read it."""

    ip: str
    port: int
    ts: Any
    checks_ran: list[str]
    compromise: str | None
    reason: str | None
    shells: list[str]
    shapes: list[str]
    proxylogon: str | None
    proxyshell: str | None
    proxynotshell: str | None
    vulnerable_cves: list[str]
    mitigated_cves: list[str]
    patched_cves: list[str]
    undetermined_cves: list[str]
    settled_cves: list[str]
    conflict_cves: list[str]

    def row(self, scan_id: str) -> tuple[Any, ...]:
        return (scan_id, self.ip, self.port, self.ts, *_values(self))


def _values(h: HostCheck) -> tuple[Any, ...]:
    return (
        h.checks_ran, h.compromise, h.reason, h.shells, h.shapes, h.proxylogon, h.proxyshell,
        h.proxynotshell, h.vulnerable_cves, h.mitigated_cves, h.patched_cves,
        h.undetermined_cves, h.settled_cves, h.conflict_cves,
    )  # fmt: skip


def _text(value: object, limit: int = _MAX_TEXT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _texts(value: object, limit: int = 64) -> list[str]:
    """A list of short strings from a record field that should be one (anything else: [])."""
    if not isinstance(value, list):
        return []
    return [v[:_MAX_TEXT] for v in value if isinstance(v, str)][:limit]


def _state(section: object) -> str | None:
    return _text(section.get("state"), 40) if isinstance(section, dict) else None


def from_record(record: Mapping[str, Any], ts: Any = None) -> HostCheck | None:
    """The checked-host view of one scan record; None when no check ran on an on-prem
    Exchange host.  Records come from files: every field is checked for its type."""
    checks = record.get("checks")
    if not isinstance(checks, dict) or not on_prem(record):
        return None
    ran = _texts(checks.get("ran"))
    if not ran:
        return None
    compromise = checks.get("compromise")
    compromise = compromise if isinstance(compromise, dict) else {}
    findings = compromise.get("findings")
    findings = [f for f in findings if isinstance(f, dict)] if isinstance(findings, list) else []
    behaviour = checks.get("behaviour")
    behaviour = behaviour if isinstance(behaviour, dict) else {}
    raw_cves = record.get("cves")
    cves: dict[str, Any] = raw_cves if isinstance(raw_cves, dict) else {}
    judged = [c for c in behaviour_cves() if isinstance(cves.get(c), str)]

    def having(verdict: str) -> list[str]:
        return [c for c in judged if cves[c] == verdict]

    settled = checks.get("settled")
    conflicts = checks.get("conflicts")
    ip, port = record.get("ip"), record.get("port")
    return HostCheck(
        ip=str(ip),
        port=int(port) if isinstance(port, int) else 0,
        ts=ts if ts is not None else record.get("timestamp"),
        checks_ran=ran,
        compromise=_text(compromise.get("state"), 40),
        reason=_text(compromise.get("reason")),
        shells=[p for f in findings if (p := _text(f.get("path"))) is not None],
        shapes=sorted({s for f in findings if (s := _text(f.get("shape"), 60)) is not None}),
        proxylogon=_state(behaviour.get("proxylogon")),
        proxyshell=_state(behaviour.get("proxyshell")),
        proxynotshell=_state(behaviour.get("proxynotshell-mitigation")),
        vulnerable_cves=having("vulnerable"),
        mitigated_cves=having("mitigated"),
        patched_cves=having("patched"),
        undetermined_cves=having("undetermined"),
        settled_cves=sorted(c for c in settled if isinstance(c, str))
        if isinstance(settled, dict)
        else [],
        conflict_cves=sorted(
            {c["cve"] for c in conflicts if isinstance(c, dict) and isinstance(c.get("cve"), str)}
        )
        if isinstance(conflicts, list)
        else [],
    )


# -- the typed rows --------------------------------------------------------------------


def _answered(store: Store, scan_id: str) -> int:
    return int(
        store.scalar("SELECT coalesce(answered, 0) FROM scans WHERE scan_id = ?", [scan_id]) or 0
    )


def _create(store: Store) -> None:
    for name in ("host_checks", "host_checks_state"):
        store.execute(create_table(store.dialect, name))
    if store.dialect.name == "postgresql":
        store.execute(
            "CREATE INDEX IF NOT EXISTS host_checks_target ON host_checks (scan_id, ip, port, ts)"
        )


def _records(store: Store, scan_id: str) -> Iterator[Any]:
    yield from store.stream(
        "SELECT r.ip, r.port, r.ts, CAST(r.record AS TEXT) FROM results r"
        f" WHERE r.scan_id = ? AND {on_prem_sql('r')} AND CAST(r.record AS TEXT) LIKE ?",
        [scan_id, _HAS_CHECKS],
    )


def _parse(ip: Any, port: Any, ts: Any, text: Any) -> HostCheck | None:
    """A stored result row's checked-host view (its own address and time, not the JSON's)."""
    try:
        record = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    h = from_record(record, ts)
    return None if h is None else replace(h, ip=str(ip), port=int(port))


def ensure(store: Store, scan_id: str) -> None:
    """Build the scan's host_checks rows if results were added since they were built."""
    if store.read_only:
        return
    answered = _answered(store, scan_id)
    with store.transaction():
        _create(store)
        built = store.scalar("SELECT answered FROM host_checks_state WHERE scan_id = ?", [scan_id])
    if built is not None and int(built) == answered:
        return
    with store.transaction():
        store.lock(f"checks:{scan_id}")
        built = store.scalar("SELECT answered FROM host_checks_state WHERE scan_id = ?", [scan_id])
        if built is not None and int(built) == answered:
            return  # another process built them while we waited
        store.execute("DELETE FROM host_checks WHERE scan_id = ?", [scan_id])
        # Read every row before writing: one connection cannot stream and COPY at once.
        rows = [
            h.row(scan_id)
            for ip, port, ts, text in _records(store, scan_id)
            if (h := _parse(ip, port, ts, text)) is not None
        ]
        store.bulk_insert("host_checks", HOST_CHECKS, rows)
        store.execute("DELETE FROM host_checks_state WHERE scan_id = ?", [scan_id])
        store.bulk_insert("host_checks_state", HOST_CHECKS_STATE, [(scan_id, answered)])


def checked_hosts(
    store: Store,
    scan_id: str,
    *,
    country: str | None = None,
    states: tuple[str, ...] | None = None,
) -> list[tuple[HostCheck, dict[str, Any]]]:
    """The checked hosts of a scan (of these compromise `states`; default all) with their
    country, AS, organisation and sector."""
    code = country_code(country)
    group = ", ".join(f"e.{c}" for c in _GROUP_FIELDS)
    join = (
        " LEFT JOIN enrichment e ON e.scan_id = r.scan_id AND e.ip = r.ip AND e.port = r.port"
        " AND e.ts = r.ts"
    )
    where = " AND e.country = ?" if code else ""
    out: list[tuple[HostCheck, dict[str, Any]]] = []
    if store.read_only:
        sql = (
            f"SELECT r.ip, r.port, r.ts, CAST(r.record AS TEXT), {group} FROM results r{join}"
            f" WHERE r.scan_id = ? AND {on_prem_sql('r')} AND CAST(r.record AS TEXT) LIKE ?" + where
        )
        for ip, port, ts, text, *fields in store.stream(
            sql, [scan_id, _HAS_CHECKS, *([code] if code else [])]
        ):
            if (h := _parse(ip, port, ts, text)) is not None:
                out.append((h, dict(zip(_GROUP_FIELDS, fields, strict=True))))
        return out
    ensure(store, scan_id)
    columns = ", ".join(f"r.{c}" for c, _ in HOST_CHECKS[1:])
    only = ""
    if states is not None:
        only = f" AND r.compromise IN ({', '.join('?' for _ in states)})"
    sql = (
        f"SELECT {columns}, {group} FROM host_checks r{join} WHERE r.scan_id = ?{where}{only}"
        " ORDER BY r.ip, r.port"
    )
    n = len(HOST_CHECKS) - 1
    args = [scan_id, *([code] if code else []), *(states or ())]
    for values in store.stream(sql, args):
        out.append((_stored(values[:n]), dict(zip(_GROUP_FIELDS, values[n:], strict=True))))
    return out


def _stored(values: Any) -> HostCheck:
    """A host_checks row (without scan_id) as a HostCheck; arrays come back as lists."""
    items: list[Any] = [
        list(v or []) if kind == "text[]" else v
        for v, (_, kind) in zip(values, HOST_CHECKS[1:], strict=True)
    ]
    return HostCheck(
        str(items[0]), int(items[1]), items[2], items[3], items[4], items[5], items[6],
        items[7], items[8], items[9], items[10], items[11], items[12], items[13], items[14],
        items[15], items[16],
    )  # fmt: skip


# The checked-host row of an enrichment row e (at most one: both are one per result row).
CHECKS_JOIN = (
    " LEFT JOIN host_checks h ON h.scan_id = e.scan_id AND h.ip = e.ip AND h.port = e.port"
    " AND h.ts = e.ts"
)


def mitigated_counts(store: Store, scan_id: str, *, country: str | None = None) -> Counter[str]:
    """Checked hosts per CVE whose merged verdict is `mitigated` (a mitigation seen on a
    vulnerable build): the counts views show them apart from vulnerable, patched and
    not affected.  Only the checks set that verdict, so the checked hosts hold them all."""
    found: Counter[str] = Counter()
    for h, _ in checked_hosts(store, scan_id, country=country):
        found.update(h.mitigated_cves)
    return found


# -- views -----------------------------------------------------------------------------


@dataclass(slots=True)
class CompromiseRow:
    """Counts of checked hosts in one group."""

    key: str | int | None
    name: str | None
    checked: int = 0
    compromised: int = 0
    unknown: int = 0
    clean: int = 0
    vulnerable: int = 0
    mitigated: int = 0
    eomt: int = 0
    proxynotshell_rewrite: int = 0
    share_pct: float | None = None
    shapes: Counter[str] = field(default_factory=Counter)

    @property
    def compromised_pct(self) -> float | None:
        return pct(self.compromised, self.checked)

    def add(self, h: HostCheck) -> None:
        self.checked += 1
        self.compromised += h.compromise == "compromised"
        self.unknown += h.compromise == "unknown"
        self.clean += h.compromise == "clean-at-known-paths"
        self.vulnerable += bool(h.vulnerable_cves)
        self.mitigated += bool(h.mitigated_cves)
        self.eomt += h.proxylogon == "mitigated"
        self.proxynotshell_rewrite += h.proxynotshell == "mitigated"
        self.shapes.update(h.shapes)

    def merge(self, other: CompromiseRow) -> None:
        for name in (
            "checked", "compromised", "unknown", "clean", "vulnerable", "mitigated", "eomt",
            "proxynotshell_rewrite",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.shapes.update(other.shapes)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "checked": self.checked,
            "compromised": self.compromised,
            "compromised_pct": self.compromised_pct,
            "share_pct": self.share_pct,
            "unknown": self.unknown,
            "clean": self.clean,
            "vulnerable": self.vulnerable,
            "mitigated": self.mitigated,
            "eomt": self.eomt,
            "proxynotshell_rewrite": self.proxynotshell_rewrite,
            "shapes": dict(sorted(self.shapes.items())),
        }


def _group_key(by: str, fields: Mapping[str, Any]) -> tuple[str | int | None, str | None]:
    if by == "country":
        code = fields.get("country")
        return code, country_name(code) if code else "unknown"
    if by == "asn":
        asn = fields.get("asn")
        return (int(asn) if asn is not None else None), fields.get("as_name")
    if by == "sector":
        return fields.get("sector") or "unknown", None
    return fields.get("organisation"), fields.get("sector")


_JOIN = (
    " LEFT JOIN enrichment e ON e.scan_id = h.scan_id AND e.ip = h.ip AND e.port = h.port"
    " AND e.ts = h.ts"
)
# (key expression, label expression) per grouping, over host_checks h and enrichment e
_KEYS = {
    "country": ("e.country", "NULL"),
    "asn": ("e.asn", "min(e.as_name)"),
    "sector": ("coalesce(e.sector, 'unknown')", "NULL"),
    "organisation": ("e.organisation", "min(e.sector)"),
}


def _sql_groups(
    store: Store, scan_id: str, by: str, code: str | None
) -> dict[str | int | None, CompromiseRow]:
    """The group rows by SQL over host_checks (writable stores; `ensure` first)."""
    d = store.dialect
    key, label = _KEYS[by]
    where = " AND e.country = ?" if code else ""
    args: list[Any] = [scan_id, *([code] if code else [])]

    def having(column: str) -> str:
        return f"count(*) FILTER (WHERE {d.array_len(column)} > 0)"

    rows = store.query(
        f"SELECT {key} AS k, {label}, count(*),"
        " count(*) FILTER (WHERE h.compromise = 'compromised'),"
        " count(*) FILTER (WHERE h.compromise = 'unknown'),"
        " count(*) FILTER (WHERE h.compromise = 'clean-at-known-paths'),"
        f" {having('h.vulnerable_cves')}, {having('h.mitigated_cves')},"
        " count(*) FILTER (WHERE h.proxylogon = 'mitigated'),"
        " count(*) FILTER (WHERE h.proxynotshell = 'mitigated')"
        f" FROM host_checks h{_JOIN} WHERE h.scan_id = ?{where} GROUP BY {key}",
        args,
    )
    cells: dict[str | int | None, CompromiseRow] = {}
    for k, lab, *counts in rows:
        value: str | int | None = int(k) if by == "asn" and k is not None else k
        if by == "country":
            lab = country_name(k) if k else "unknown"
        n = [int(c) for c in counts]
        cells[value] = CompromiseRow(
            value, lab, checked=n[0], compromised=n[1], unknown=n[2], clean=n[3],
            vulnerable=n[4], mitigated=n[5], eomt=n[6], proxynotshell_rewrite=n[7],
        )  # fmt: skip
    shapes = store.query(
        f"SELECT k, shape, count(*) FROM (SELECT {key} AS k, unnest(h.shapes) AS shape"
        f" FROM host_checks h{_JOIN} WHERE h.scan_id = ?{where}) t GROUP BY k, shape",
        args,
    )
    for k, shape, n in shapes:
        value = int(k) if by == "asn" and k is not None else k
        if value in cells:
            cells[value].shapes[str(shape)] = int(n)
    return cells


def group_view(
    store: Store,
    scan_id: str,
    by: str,
    *,
    country: str | None = None,
    limit: int | None = None,
) -> tuple[list[CompromiseRow], CompromiseRow]:
    """(rows per group, most compromised first; the totals row)."""
    if by not in _KEYS:
        raise UsageError(
            f"the compromise view groups by country, asn, sector or organisation, not {by}"
        )
    code = country_code(country)
    total = CompromiseRow("all", "all checked hosts")
    if store.read_only:
        cells: dict[str | int | None, CompromiseRow] = {}
        for h, fields in checked_hosts(store, scan_id, country=code):
            key, name = _group_key(by, fields)
            cell = cells.setdefault(key, CompromiseRow(key, name))
            if cell.name is None or (name is not None and name < cell.name):
                cell.name = name if name is not None else cell.name
            cell.add(h)
    else:
        ensure(store, scan_id)
        cells = _sql_groups(store, scan_id, by, code)
    for cell in cells.values():
        total.merge(cell)
    rows = list(cells.values())
    for row in rows:
        row.share_pct = pct(row.compromised, total.compromised)
    total.share_pct = pct(total.compromised, total.compromised)
    rows.sort(key=lambda r: (-r.compromised, -r.checked, r.key is None, str(r.key)))
    return (rows[:limit] if limit is not None else rows), total


_CVE_ARRAYS = (
    ("vulnerable", "vulnerable_cves"), ("mitigated", "mitigated_cves"),
    ("patched", "patched_cves"), ("undetermined", "undetermined_cves"),
    ("settled", "settled_cves"), ("conflicts", "conflict_cves"),
)  # fmt: skip


def cve_view(store: Store, scan_id: str, *, country: str | None = None) -> list[dict[str, Any]]:
    """Per CVE the checks speak for: how the merged verdicts of checked hosts fall, how
    many a behavioural reading settled, and the conflicts."""
    code = country_code(country)
    cves = behaviour_cves()
    counts = {cve: Counter[str]() for cve in cves}
    if store.read_only:
        for h, _ in checked_hosts(store, scan_id, country=code):
            for name, column in _CVE_ARRAYS:
                for cve in getattr(h, column):
                    if cve in counts:
                        counts[cve][name] += 1
    else:
        ensure(store, scan_id)
        d = store.dialect
        parts, args = [], []
        for cve in cves:
            for _, column in _CVE_ARRAYS:
                parts.append(f"count(*) FILTER (WHERE {d.array_has('h.' + column, '?')})")
                args.append(cve)
        where = " AND e.country = ?" if code else ""
        (row,) = store.query(
            f"SELECT {', '.join(parts)} FROM host_checks h{_JOIN} WHERE h.scan_id = ?{where}",
            [*args, scan_id, *([code] if code else [])],
        )
        values = iter(row)
        for cve in cves:
            for name, _ in _CVE_ARRAYS:
                counts[cve][name] = int(next(values) or 0)
    out = []
    for cve, c in counts.items():
        judged = c["vulnerable"] + c["mitigated"] + c["patched"] + c["undetermined"]
        out.append(
            {
                "key": cve,
                "judged": judged,
                "vulnerable": c["vulnerable"],
                "mitigated": c["mitigated"],
                "mitigated_pct": pct(c["mitigated"], c["vulnerable"] + c["mitigated"]),
                "patched": c["patched"],
                "undetermined": c["undetermined"],
                "settled": c["settled"],
                "conflicts": c["conflicts"],
            }
        )
    return out


def host_view(
    store: Store,
    scan_id: str,
    *,
    country: str | None = None,
    states: tuple[str, ...] = ("compromised",),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The checked hosts in `states` (default: compromised), with what was found; the
    shells' paths and the reason are server-influenced text (escape on output)."""
    out = []
    for h, fields in checked_hosts(store, scan_id, country=country, states=states):
        if h.compromise not in states:
            continue
        out.append(
            {
                "ip": h.ip,
                "port": h.port,
                "country": fields.get("country"),
                "asn": fields.get("asn"),
                "organisation": fields.get("organisation"),
                "sector": fields.get("sector"),
                "compromise": h.compromise,
                "shells": h.shells,
                "shapes": h.shapes,
                "reason": h.reason,
                "proxylogon": h.proxylogon,
                "proxyshell": h.proxyshell,
                "proxynotshell": h.proxynotshell,
                "mitigated_cves": h.mitigated_cves,
                "vulnerable_cves": h.vulnerable_cves,
            }
        )
    out.sort(key=lambda r: (str(r["country"] or "~"), r["ip"], r["port"]))
    return out[:limit] if limit is not None else out


def headline(total: CompromiseRow, rows: list[CompromiseRow], by: str) -> str:
    """ "12 of 300 checked hosts compromised (4.0 %); 27.3 % of them in DE"."""
    text = f"{total.compromised:,} of {total.checked:,} checked hosts compromised"
    if total.checked:
        text += f" ({total.compromised_pct:.1f} %)"
    top = rows[0] if rows else None
    if top is not None and top.compromised and top.share_pct is not None:
        where = top.key if top.key is not None else "unknown"
        text += f"; {top.share_pct:.1f} % of them in {by} {where}"
    return text


# -- the Shadowserver-style export of compromised hosts -----------------------------------

WEBSHELL_TAG = "exchange;webshell"  # what Shadowserver's scan_exchange rows say for a shell


def _export_rows(
    store: Store, scan_id: str, per: str | None, value: object
) -> Iterator[tuple[dict[str, Any], HostCheck]]:
    """(export row as exports._SELECT names it, its checked host) of each compromised host."""
    from exwatch.report import exports

    found = {
        (h.ip, h.port): h
        for h, _ in checked_hosts(store, scan_id, states=("compromised",))
        if h.compromise == "compromised" and h.shells
    }
    if not found:
        return
    sql, params = exports._where(store, True, per, value)  # type: ignore[arg-type]
    names = exports._names(sql)
    for values in store.stream(sql, [scan_id, *params]):
        row = dict(zip(names, values, strict=True))
        h = found.get((str(row["ip"]), int(row["port"])))
        if h is not None:
            yield row, h


def webshell_rows(row: dict[str, Any], h: HostCheck) -> list[dict[str, Any]]:
    """Shadowserver scan_exchange rows of one compromised host: one per shell found, tag
    `exchange;webshell` (IntelMQ: intrusions / system-compromise /
    exchange-server-webshell), the shell's URL in `url`."""
    from exwatch.report.exports import shadowserver_row

    base = shadowserver_row(row)
    ip, port = str(row["ip"]), int(row["port"])
    host = f"[{ip}]" if ":" in ip else ip
    scheme = "http" if port == 80 else "https"
    return [
        {**base, "severity": "critical", "tag": WEBSHELL_TAG, "url": f"{scheme}://{host}:{port}{p}"}
        for p in h.shells
    ]


def _write(
    store: Store, scan_id: str, fmt: str, out: Any, raw: bool, per: str | None, value: object
) -> int:
    import csv

    from exwatch.report.exports import SHADOWSERVER_COLUMNS, jsonl_object, neutralise

    count = 0
    if fmt == "shadowserver":
        writer = csv.DictWriter(out, fieldnames=SHADOWSERVER_COLUMNS, lineterminator="\n")
        writer.writeheader()
    for row, h in _export_rows(store, scan_id, per, value):
        if fmt == "shadowserver":
            for line in webshell_rows(row, h):
                writer.writerow(line if raw else {k: neutralise(v) for k, v in line.items()})
                count += 1
        else:
            out.write(json.dumps(jsonl_object(row), separators=(",", ":"), default=str) + "\n")
            count += 1
    return count


def export_compromised(
    store: Store,
    scan_id: str,
    fmt: str,
    output: str,
    *,
    per: str | None = None,
    scan_date: str | None = None,
    raw: bool = False,
) -> list[tuple[str, int]]:
    """`exwatch export --compromised`: the compromised hosts only, as Shadowserver CSV (one
    row per shell) or JSON lines (their records); per country or organisation as files
    named like Shadowserver's.  Returns (file, rows) per file written."""
    from pathlib import Path

    from exwatch.report.exports import _atomic, group_files, to_stdout

    if fmt not in ("shadowserver", "jsonl"):
        raise UsageError("--compromised exports Shadowserver CSV or JSON lines, not Parquet")

    def one(path: Path, group: object) -> int:
        with _atomic(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
            return _write(store, scan_id, fmt, handle, raw, per, group)

    ext = "csv" if fmt == "shadowserver" else "jsonl"
    if per is None:
        if output == "-":
            return [("-", to_stdout(lambda out: _write(store, scan_id, fmt, out, raw, None, None)))]
        return [(output, one(Path(output), None))]
    field = "country" if per == "country" else "organisation"
    compromised = checked_hosts(store, scan_id, states=("compromised",))
    groups = sorted(
        {f.get(field) for h, f in compromised if h.compromise == "compromised"},
        key=lambda g: (g is None, str(g)),
    )
    return [
        (str(path), one(path, group)) for group, path in group_files(output, groups, scan_date, ext)
    ]


def html_context(
    store: Store, scan_id: str, *, country: str | None = None
) -> dict[str, Any] | None:
    """What the HTML report's compromise section shows; None when no check ran."""
    groups, total = group_view(store, scan_id, "country", country=country)
    if total.checked == 0:
        return None
    return {
        "headline": headline(total, groups, "country"),
        "total": total,
        "by_country": groups,
        "cves": cve_view(store, scan_id, country=country),
        "hosts": host_view(store, scan_id, country=country, limit=500),
    }


__all__ = [
    "CHECKS_JOIN",
    "STATES",
    "VIEW_BY",
    "WEBSHELL_TAG",
    "CompromiseRow",
    "HostCheck",
    "behaviour_cves",
    "checked_hosts",
    "cve_view",
    "ensure",
    "export_compromised",
    "from_record",
    "group_view",
    "headline",
    "host_view",
    "html_context",
    "mitigated_counts",
    "webshell_rows",
]
