"""The `enrichment` table: country, AS, organisation and sector beside each answering result.

Keyed like `results` (scan_id, ip, port, ts).  Only rows with status `success` are enriched:
an address that did not answer gives no organisation evidence and is not counted per group.
The verdict columns (status, is_exchange, vulnerable, eol, build, CVE arrays...) are copied
from `results` when a row is enriched, so per-group counts read one table.  Results are
append-only, so the copy stays true.

Every enrichment row names the *profile* it was made with: the options (files, --rdns) and
the sources they gave (database types and dates, constituency file and digest).  A command
given enrichment options that differ from a scan's profile re-enriches that scan; a command
given none enriches new rows as the scan's rows already are.  `report`, `diff` and `export`
call `prepare` before they read, so a report never silently leaves rows out.
"""

# SQL here is assembled from fixed column names and clauses of this module only; every
# value (scan id, country, paths) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from exwatch.report import rollup
from exwatch.store import Store
from exwatch.store.base import now
from exwatch.store.dialect import Dialect
from exwatch.store.rows import ip_sort_key, parse_timestamp
from exwatch.store.schema import ENRICHMENT, ENRICHMENT_COLUMNS

_COPIED = (
    "status, is_exchange, vulnerable, eol, build, product, cu, vulnerable_cves, patched_cves,"
    " undetermined_cves, cve_ids, record"
)


class RecordEnricher(Protocol):
    """What we need of `exwatch.enrich.Enricher` (kept narrow so tests can pass their own)."""

    rdns: bool
    warnings: list[str]

    @property
    def sources(self) -> Mapping[str, str | None]: ...

    def enrich_batch(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...

    async def enrich_many(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class EnrichOptions:
    """What the user asked enrichment to use (None: the default)."""

    geo_db: str | None = None
    asn_db: str | None = None
    constituency: str | None = None
    rdns: bool = False

    @property
    def given(self) -> bool:
        return any((self.geo_db, self.asn_db, self.constituency, self.rdns))

    def to_json(self) -> dict[str, Any]:
        def absolute(path: str | None) -> str | None:
            return None if path is None else os.path.abspath(path)

        return {
            "geo_db": absolute(self.geo_db),
            "asn_db": absolute(self.asn_db),
            "constituency": absolute(self.constituency),
            "rdns": self.rdns,
        }

    @classmethod
    def from_json(cls, value: Any) -> EnrichOptions:
        if not isinstance(value, dict):
            return cls()
        return cls(
            value.get("geo_db"), value.get("asn_db"), value.get("constituency"),
            bool(value.get("rdns")),
        )  # fmt: skip

    def missing_files(self) -> list[str]:
        return [
            p for p in (self.geo_db, self.asn_db, self.constituency) if p and not os.path.isfile(p)
        ]


def profile_of(sources: Mapping[str, Any], rdns: bool) -> str:
    """Profiles are equal when the sources are: same databases (type, date), same
    constituency content, same rules, same --rdns."""
    text = json.dumps({"sources": dict(sources), "rdns": rdns}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class EnrichOutcome:
    rows: int = 0
    scans: set[str] = field(default_factory=set)
    bad_records: int = 0
    reenriched: list[str] = field(default_factory=list)  # scans redone for other options
    notes: list[str] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)


def _scan_where(scan_ids: Iterable[str] | None, column: str = "r.scan_id") -> tuple[str, list[Any]]:
    if scan_ids is None:
        return "", []
    clause, args = Dialect.in_list(column, sorted(set(scan_ids)))
    return f" AND {clause}", args


_MISSING = (
    "SELECT {select} FROM results r WHERE r.status = 'success'{where}"
    " AND NOT EXISTS (SELECT 1 FROM enrichment e WHERE e.scan_id = r.scan_id"
    " AND e.ip = r.ip AND e.port = r.port AND e.ts = r.ts)"
)


def missing_count(store: Store, scan_ids: Iterable[str] | None = None) -> int:
    """Answering results that have no enrichment row yet."""
    where, args = _scan_where(scan_ids)
    return int(store.scalar(_MISSING.format(select="count(*)", where=where), args) or 0)


def _maybe_missing(store: Store, scan_ids: Sequence[str]) -> list[str]:
    """Scans whose counters say some answering rows lack enrichment (cheap: one row each)."""
    where, args = store.dialect.in_list("scan_id", scan_ids)
    rows = store.query(
        f"SELECT scan_id FROM scans WHERE {where}"
        " AND coalesce(answered, 0) <> coalesce(enriched, 0)",
        args,
    )
    return [str(r[0]) for r in rows]


def scan_profiles(store: Store, scan_id: str) -> list[str]:
    rows = store.query(
        "SELECT DISTINCT profile_id FROM enrichment WHERE scan_id = ? AND profile_id IS NOT NULL",
        [scan_id],
    )
    return sorted(str(r[0]) for r in rows)


def stored_options(store: Store, profile_id: str) -> EnrichOptions | None:
    rows = store.query("SELECT options FROM enrich_profiles WHERE profile_id = ?", [profile_id])
    if not rows or rows[0][0] is None:
        return None
    try:
        return EnrichOptions.from_json(json.loads(rows[0][0]))
    except ValueError:
        return None


def _register_profile(
    store: Store, profile_id: str, options: EnrichOptions, sources: Mapping[str, Any]
) -> None:
    store.execute(
        "INSERT INTO enrich_profiles (profile_id, options, sources, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [profile_id, json.dumps(options.to_json()), json.dumps(dict(sources)), now()],
    )


EnricherFactory = Callable[[EnrichOptions], RecordEnricher]


def prepare(
    store: Store,
    make: EnricherFactory,
    options: EnrichOptions,
    scan_ids: Sequence[str] | None = None,
    *,
    refresh: bool = False,
    check_all: bool = False,
) -> EnrichOutcome:
    """Make the enrichment of these scans (all with None) complete and true to `options`.

    Options given that differ from a scan's profile: the scan is re-enriched.  No options
    given: missing rows are enriched like the scan's other rows (its latest profile).
    `refresh` redoes every row; `check_all` looks for missing rows even when the counters
    say there are none (the `enrich` command).
    """
    outcome = EnrichOutcome()
    ids = store.scan_ids() if scan_ids is None else list(dict.fromkeys(scan_ids))
    if not ids:
        return outcome
    if store.read_only:
        missing = missing_count(store, ids)
        if missing:
            outcome.notes.append(
                f"{missing} answering results are not enriched and the store is read-only:"
                " the counts below leave them out (run `exwatch enrich` on a writable copy)"
            )
        return outcome
    enrichers: dict[EnrichOptions, tuple[RecordEnricher, str]] = {}

    def enricher_for(opts: EnrichOptions) -> tuple[RecordEnricher, str]:
        if opts not in enrichers:
            enricher = make(opts)
            outcome.notes.extend(enricher.warnings)
            pid = profile_of(enricher.sources, enricher.rdns)
            _register_profile(store, pid, opts, enricher.sources)
            enrichers[opts] = (enricher, pid)
        return enrichers[opts]

    candidates = ids if (refresh or options.given or check_all) else _maybe_missing(store, ids)
    for scan_id in candidates:
        have = scan_profiles(store, scan_id)
        if options.given or refresh or not have:
            opts = options
        else:
            latest = _latest_profile(store, scan_id)
            opts = (latest and stored_options(store, latest)) or EnrichOptions()
            if opts.missing_files():
                outcome.notes.append(
                    f"scan {scan_id} was enriched with {', '.join(opts.missing_files())},"
                    " which is gone; new rows use the default sources"
                )
                opts = EnrichOptions()
        enricher, pid = enricher_for(opts)
        redo = refresh or (options.given and any(p != pid for p in have))
        if redo:
            if have and not refresh:
                outcome.reenriched.append(scan_id)
            _delete_scan(store, scan_id)
        elif not check_all and not _counters_differ(store, scan_id):
            continue
        got = enrich_rows(store, enricher, pid, [scan_id])
        if not got.rows:
            _resync(store, scan_id)  # the counters drifted (e.g. an older exwatch wrote rows)
        outcome.rows += got.rows
        outcome.bad_records += got.bad_records
        outcome.scans |= got.scans
        outcome.sources = dict(enricher.sources)
    return outcome


def _latest_profile(store: Store, scan_id: str) -> str | None:
    rows = store.query(
        "SELECT profile_id FROM enrichment WHERE scan_id = ? AND profile_id IS NOT NULL"
        " ORDER BY enriched_at DESC LIMIT 1",
        [scan_id],
    )
    return str(rows[0][0]) if rows else None


def _counters_differ(store: Store, scan_id: str) -> bool:
    return bool(_maybe_missing(store, [scan_id]))


def _resync(store: Store, scan_id: str) -> None:
    store.execute(
        "UPDATE scans SET answered = (SELECT count(*) FROM results r WHERE r.scan_id = ?"
        " AND r.status = 'success'), enriched = (SELECT count(*) FROM enrichment e"
        " WHERE e.scan_id = ?) WHERE scan_id = ?",
        [scan_id, scan_id, scan_id],
    )


def _delete_scan(store: Store, scan_id: str) -> None:
    with store.transaction():
        store.lock(f"enrich:{scan_id}")
        store.execute("DELETE FROM enrichment WHERE scan_id = ?", [scan_id])
        rollup.forget(store, scan_id)
        store.execute("UPDATE scans SET enriched = 0 WHERE scan_id = ?", [scan_id])
        store.bump_generation([scan_id])


def enrich_rows(
    store: Store,
    enricher: RecordEnricher,
    profile_id: str,
    scan_ids: Sequence[str],
    *,
    batch: int = 20_000,
) -> EnrichOutcome:
    """Enrich every answering result of these scans that lacks a row.

    One transaction per scan, under the scan's lock: two commands enriching the same scan
    at once (PostgreSQL) never enrich a row twice.  The rows are counted into the scan's
    rollup as they are written."""
    outcome = EnrichOutcome()
    d = store.dialect
    for scan_id in scan_ids:
        with store.transaction():
            store.lock(f"enrich:{scan_id}")
            enriched_before = store.scalar(
                "SELECT coalesce(enriched, 0) FROM scans WHERE scan_id = ?", [scan_id]
            )
            fresh = not enriched_before or rollup.is_current(store, scan_id)
            acc = rollup.Accumulator()
            pending: list[tuple[Any, ...]] = []
            for row in store.stream(
                _MISSING.format(
                    select=f"r.scan_id, r.ip, r.port, {d.iso('r.ts', micro=True)}, {_COPIED}",
                    where=" AND r.scan_id = ?",
                ),
                [scan_id],
                batch,
            ):
                pending.append(row)
                if len(pending) >= batch:
                    _write_batch(store, enricher, profile_id, pending, outcome, acc)
                    pending = []
            if pending:
                _write_batch(store, enricher, profile_id, pending, outcome, acc)
            if acc.cells:
                rollup.add(store, scan_id, acc, fresh=fresh)
    return outcome


def _parse_record(text: object) -> tuple[dict[str, Any], bool]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        value = None
    return (value, True) if isinstance(value, dict) else ({}, False)


def _write_batch(
    store: Store,
    enricher: RecordEnricher,
    profile_id: str,
    rows: list[tuple[Any, ...]],
    outcome: EnrichOutcome,
    acc: rollup.Accumulator,
) -> None:
    records: list[dict[str, Any]] = []
    for row in rows:
        record, ok = _parse_record(row[-1])
        if not ok:
            outcome.bad_records += 1
            # Enrich from the typed columns alone: the address still gets a country.
            record = {"ip": row[1], "port": row[2]}
        records.append(record)
    if enricher.rdns:
        answers = asyncio.run(enricher.enrich_many(records))
    else:
        answers = enricher.enrich_batch(records)
    stamp = now()
    typed = [
        _typed(row, answer, stamp, profile_id) for row, answer in zip(rows, answers, strict=True)
    ]
    per_scan: dict[str, int] = {}
    for row in rows:
        per_scan[str(row[0])] = per_scan.get(str(row[0]), 0) + 1
    for values in typed:
        acc.add(dict(zip(ENRICHMENT_COLUMNS, values, strict=True)))
    with store.transaction():
        store.bulk_insert("enrichment", ENRICHMENT, typed)
        for scan_id, n in per_scan.items():
            store.execute(
                "UPDATE scans SET enriched = coalesce(enriched, 0) + ? WHERE scan_id = ?",
                [n, scan_id],
            )
        store.bump_generation(per_scan)
    outcome.rows += len(rows)
    outcome.scans.update(per_scan)


def _typed(
    row: tuple[Any, ...], answer: Mapping[str, Any], stamp: Any, profile_id: str
) -> tuple[Any, ...]:
    scan_id, ip, port, ts, status, is_exchange, vulnerable, eol = row[:8]
    build, product, cu, vulnerable_cves, patched, undetermined, cve_ids = row[8:15]
    attribution = answer.get("attribution") or {}
    ptr = answer.get("ptr") or {}
    asn = answer.get("asn")
    try:
        sort_key = ip_sort_key(str(ip))
    except ValueError:
        sort_key = "z" + str(ip)

    return (
        scan_id,
        ip,
        port,
        parse_timestamp(ts),
        sort_key,
        answer.get("country"),
        answer.get("country_source"),
        asn if isinstance(asn, int) and not isinstance(asn, bool) else None,
        answer.get("as_name"),
        answer.get("asn_source"),
        answer.get("organisation"),
        answer.get("sector") or "unknown",
        attribution.get("matched_by") if isinstance(attribution, dict) else None,
        attribution.get("confidence") if isinstance(attribution, dict) else None,
        ptr.get("name") if isinstance(ptr, dict) and ptr.get("confirmed") else None,
        status,
        is_exchange,
        vulnerable,
        eol,
        build,
        product,
        cu,
        list(vulnerable_cves or []),
        list(patched or []),
        list(undetermined or []),
        list(cve_ids or []),
        json.dumps(dict(answer), separators=(",", ":"), default=str),
        stamp,
        profile_id,
    )


def sources(store: Store, scan_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Country, AS and constituency sources used for the given scans (what reports state)."""
    where, args = _scan_where(scan_ids, "e.scan_id")
    out: dict[str, list[str]] = {"country": [], "asn": [], "constituency": []}
    for kind in ("country", "asn"):
        rows = store.query(
            f"SELECT DISTINCT {kind}_source FROM enrichment e WHERE TRUE{where} ORDER BY 1", args
        )
        out[kind] = [str(r[0]) for r in rows if r[0] is not None]
    rows = store.query(
        "SELECT p.sources FROM enrich_profiles p WHERE p.profile_id IN"
        f" (SELECT DISTINCT e.profile_id FROM enrichment e WHERE TRUE{where})",
        args,
    )
    found = set()
    for (text,) in rows:
        try:
            value = json.loads(text) if isinstance(text, str) else {}
        except ValueError:
            value = {}
        if isinstance(value, dict):
            found.add(value.get("constituency") or "none")
    out["constituency"] = sorted(found)
    return out


__all__ = [
    "EnrichOptions",
    "EnrichOutcome",
    "RecordEnricher",
    "enrich_rows",
    "missing_count",
    "prepare",
    "profile_of",
    "sources",
]
