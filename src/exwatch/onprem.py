"""What counts as on-premises Exchange: the one predicate every view of a scan uses.

A result is on-prem Exchange when the scanner identified Exchange (`exchange` is an
object) and the record marks the address neither as an Exchange Online front end
(`exchange_online`) nor as a look-alike that failed the plausibility checks (`suspect`):
those answer like Exchange but are not an organisation's own server to patch.

`on_prem(record)` decides it once, over the record; the store keeps its answer in the
`is_exchange` column of `results` (store/rows.py), which `enrichment` copies.  Reports,
rollups, exports, notify and the web pages read that column through `on_prem_sql` (SQL)
or `counts_as_on_prem` (a row as a dict), so they count the same hosts; the scanner's own
decision to run the opt-in checks is the same test on the fingerprint (scan/host.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def on_prem(record: Mapping[str, Any]) -> bool:
    """The record shows on-prem Exchange (see the module's docstring)."""
    return (
        isinstance(record.get("exchange"), Mapping)
        and not record.get("exchange_online")
        and not record.get("suspect")
    )


def on_prem_sql(alias: str = "") -> str:
    """The same predicate in SQL over a `results` or `enrichment` row (`alias.` prefix
    optional), never NULL."""
    prefix = f"{alias}." if alias else ""
    return f"coalesce({prefix}is_exchange, FALSE)"


def counts_as_on_prem(row: Mapping[str, Any]) -> bool:
    """The same predicate over a `results` or `enrichment` row as a dict of its columns."""
    return bool(row.get("is_exchange"))


__all__ = ["counts_as_on_prem", "on_prem", "on_prem_sql"]
