"""What the catalogue says about a stored build, for the web pages (pure, cached).

Patch lag is a function of the build alone (and of the catalogue exwatch ships), so the
pages compute it once per distinct build instead of reading every record's JSON: a census
of ten million hosts holds a few hundred builds.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from exwatch.assess import assess
from exwatch.errors import BuildParseError
from exwatch.knowledge.catalogue import Catalogue, default


@lru_cache(maxsize=4096)
def lag_of(build: str) -> tuple[int, int, bool] | None:
    """(days behind the line's newest update, updates behind the CU's newest, CU still
    receives updates) of a build; None when the build cannot be placed."""
    try:
        lag = assess(build).patch_lag
    except BuildParseError:
        return None
    if lag is None:
        return None
    return lag.days_behind, lag.sus_behind, lag.cu_receives_sus


def lag_values(builds: list[str]) -> tuple[str, list[Any]]:
    """A `(VALUES ...) AS lag(build, days, sus, current)` relation for these builds, with
    its parameters, to join on `build` (an empty relation when no build has a lag)."""
    rows = [(b, *lag) for b in sorted(set(builds)) if (lag := lag_of(b)) is not None]
    if not rows:
        return (
            "(SELECT CAST(NULL AS VARCHAR) AS build, CAST(NULL AS INTEGER) AS days,"
            " CAST(NULL AS INTEGER) AS sus, CAST(NULL AS BOOLEAN) AS current WHERE FALSE) lag",
            [],
        )
    one = "(CAST(? AS VARCHAR), CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS BOOLEAN))"
    params = [value for row in rows for value in row]
    return f"(VALUES {', '.join([one] * len(rows))}) AS lag(build, days, sus, current)", params


def scan_builds(store: Any, scan_id: str, stamp: str) -> list[str]:
    """The distinct builds of a scan's enrichment, read once per enrichment state (on
    PostgreSQL a DISTINCT over millions of rows costs a second; pages need it each time)."""
    from exwatch.web.memo import memo

    return memo(
        ("builds", store.location, scan_id, stamp),
        lambda: [
            str(r[0])
            for r in store.query(
                "SELECT DISTINCT build FROM enrichment WHERE scan_id = ? AND build IS NOT NULL",
                [scan_id],
            )
        ],
    )


def kev_list(catalogue: Catalogue | None = None) -> list[str]:
    return sorted((catalogue or default()).kev_cves())


__all__ = ["kev_list", "lag_of", "lag_values", "scan_builds"]
