"""Which answering hosts count as on-premises Exchange in reports: the one seam to change.

Every report count of "Exchange" hosts (rollups, patch lag, KEV, CVE counts, host lists,
trends and diffs) goes through these two spellings of one predicate: SQL over `enrichment`
columns and Python over an enrichment row.  Today it is "the scanner identified Exchange"
(`is_exchange`).  Hosts that answer like Exchange but are not an organisation's own server
(Exchange Online front ends, honeypots flagged `suspect`) are to be left out here, once
their record keys have typed columns; the two spellings must stay the same predicate (the
rollup built in SQL and the one counted while enriching are compared by the tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def on_prem_sql(alias: str = "") -> str:
    """SQL boolean over an enrichment row (`alias.` prefix optional), never NULL."""
    prefix = f"{alias}." if alias else ""
    return f"coalesce({prefix}is_exchange, FALSE)"


def counts_as_on_prem(row: Mapping[str, Any]) -> bool:
    """The same predicate over an enrichment row as a dict of its columns."""
    return bool(row.get("is_exchange"))


__all__ = ["counts_as_on_prem", "on_prem_sql"]
