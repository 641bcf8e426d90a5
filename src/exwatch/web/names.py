"""The host-name search on DuckDB: each scan's names lower-cased and sorted, in `web_names`.

A search for a host name is a prefix of the target name, the certificate CN or the NTLM
computer name.  DuckDB has no index for it; over the results themselves it reads three
columns of every result of the scan (half a second at ten million).  `web_names` holds one
row per result and distinct name, stored in name order, so the zone maps of a prefix's
range leave a few row groups to read.  It is rebuilt when the scan's results change (their
count or newest time, both read from DuckDB's metadata in a millisecond), the first time a
search needs it, like the drill-down counts.  PostgreSQL searches its prefix indexes on
`results` instead (web/indexes.py), and a read-only store reads `results` directly.
"""

# SQL here is assembled from fixed column names of this module; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import sys
from typing import Any

from exwatch.store import Store
from exwatch.web import derived

NAME_COLUMNS = ("hostname", "tls_subject_cn", "ntlm_dns_computer")
GATHER = 5000  # matching names past which a prefix is common (see `matches`)


def stamp_of(store: Store, scan_id: str) -> str:
    """What a scan's names depend on: its results' count and newest time (an ingest of more
    results changes both)."""
    row = store.query("SELECT count(*), max(ts) FROM results WHERE scan_id = ?", [scan_id])
    return f"{int(row[0][0])}:{row[0][1]}" if row else "missing"


def usable(store: Store) -> bool:
    return store.dialect.name == "duckdb" and not store.read_only


def ensure(store: Store, scan_id: str) -> None:
    """Build the scan's names if its results changed since they were built (DuckDB,
    writable stores; see `usable`)."""

    def fill() -> None:
        one = (
            "SELECT scan_id, lower({c}) AS name, ip, port, ts, hostname,"
            " tls_subject_cn AS cert_cn, ntlm_dns_computer AS ntlm_computer, build, status"
            " FROM results WHERE scan_id = ? AND {c} IS NOT NULL"
        )
        union = " UNION ".join(one.format(c=c) for c in NAME_COLUMNS)
        store.execute(
            "INSERT INTO web_names (scan_id, name, ip, port, ts, hostname, cert_cn,"
            f" ntlm_computer, build, status) SELECT * FROM ({union}) ORDER BY name, ip, port",
            [scan_id] * len(NAME_COLUMNS),
        )

    derived.rebuild(store, "web_names", scan_id, stamp_of(store, scan_id), fill)


def after(prefix: str) -> str | None:
    """The least string greater than every string starting with `prefix` (code point order,
    which is DuckDB's), or None when there is none."""
    if not prefix:
        return None
    last = ord(prefix[-1])
    if last >= sys.maxunicode:
        return after(prefix[:-1])
    return prefix[:-1] + chr(last + 1)


def matches(
    store: Store, scan_id: str, prefix: str, pattern: str, limit: int
) -> list[dict[str, Any]] | None:
    """Results of the scan one of whose names starts with `prefix` (lower-case; `pattern`
    is it as a LIKE pattern), in address order: the columns of the search page.  None when
    the prefix is common (more than GATHER names): the results in address order then hold
    matches early, and reading them is faster than sorting every match."""
    ensure(store, scan_id)
    where = ["scan_id = ?", "name >= ?"]
    params: list[Any] = [scan_id, prefix]
    upper = after(prefix)
    if upper is not None:
        where.append("name < ?")
        params.append(upper)
    many = store.scalar(
        f"SELECT count(*) FROM (SELECT 1 FROM web_names WHERE {' AND '.join(where)}"
        f" LIMIT {GATHER + 1})",
        params,
    )
    if int(many or 0) > GATHER:
        return None
    where.append("name LIKE ? ESCAPE '\\'")
    params.append(pattern)
    # A result (ip, port, ts) has a row per distinct name: the first 3 * limit rows hold its
    # first `limit` results (a top-N, where a DISTINCT would sort every match).
    found = store.dicts(
        f"SELECT {', '.join(_SHOWN)}, ts FROM web_names WHERE {' AND '.join(where)}"
        f" ORDER BY ip, port, ts LIMIT {len(NAME_COLUMNS) * int(limit)}",
        params,
    )
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for row in found:
        key = tuple(row.values())
        if key not in seen and len(out) < limit:
            seen.add(key)
            row.pop("ts")
            out.append(row)
    return out


_SHOWN = ("ip", "port", "hostname", "cert_cn", "ntlm_computer", "build", "status")


__all__ = ["GATHER", "NAME_COLUMNS", "after", "ensure", "matches", "stamp_of", "usable"]
