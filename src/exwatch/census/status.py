"""`exwatch census status` and `census cancel`: what a census is doing, and stopping it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from exwatch.census.plan import CensusSettings
from exwatch.census.submit import find_census, require_postgres
from exwatch.errors import UsageError
from exwatch.store import Store, open_store
from exwatch.store.census import CensusBook

_LISTED = 20  # parked / retrying / running tasks listed with their details


@dataclass(frozen=True, slots=True)
class CensusStatus:
    scan_id: str
    status: str  # queued | running | finished | incomplete | cancelled
    queue: str
    broker: str
    targets: int
    tasks: int
    tasks_by_status: dict[str, int]
    scanned: int  # results stored
    exchange: int
    vulnerable: int
    attempts: int
    rate: float | None  # hosts per second since the first task started
    eta: float | None  # seconds, at that rate
    elapsed: float | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    rate_limit: float | None
    deadline: float
    max_attempts: int
    transport: str | None = None  # the HTTP client the workers use (None: unreadable settings)
    checks: list[str] = field(default_factory=list)  # the opt-in checks the census asked for
    checked: int | None = None  # stored hosts the checks ran on (None: no checks asked)
    compromised: int | None = None  # of those, found compromised by the web-shell check
    parked: list[dict[str, Any]] = field(default_factory=list)
    retrying: list[dict[str, Any]] = field(default_factory=list)
    running: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _book(store: Store) -> CensusBook:
    if not store.has_table("census"):
        raise UsageError(f"no census in {store.location}; submit one with `exwatch census submit`")
    return CensusBook(store)


def _settings(data: dict[str, Any]) -> CensusSettings | None:
    """The census's settings, or None when this exwatch cannot read them (a newer
    version's): the status shows the rest."""
    try:
        return CensusSettings.from_json(data)
    except UsageError:
        return None


def census_status(db: str, scan_id: str | None = None) -> CensusStatus:
    require_postgres(db)
    with open_store(db, read_only=True, create=False) as store:
        book = _book(store)
        census = find_census(book, store, scan_id)
        info = book.overview(census.scan_id)
        scanned = int(info["scanned"])
        elapsed = info["elapsed"]
        rate = scanned / elapsed if elapsed and elapsed > 0 and scanned else None
        eta = None
        if info["status"] in ("queued", "running") and rate:
            eta = max(0, census.targets - scanned) / rate
        settings = _settings(census.settings)
        checked = compromised = None
        if settings is not None and settings.checks:
            checked, compromised = book.checked(census.scan_id)
        listed = {
            state: book.tasks(census.scan_id, [state], limit=_LISTED)
            for state in ("parked", "retrying", "running")
        }
        return CensusStatus(
            scan_id=census.scan_id,
            status=str(info["status"]),
            queue=census.queue,
            broker=census.broker,
            targets=census.targets,
            tasks=census.tasks,
            tasks_by_status=dict(info["tasks_by_status"]),
            scanned=scanned,
            exchange=int(info["exchange"]),
            vulnerable=int(info["vulnerable"]),
            attempts=int(info["attempts"]),
            rate=rate,
            eta=eta,
            elapsed=elapsed,
            created_at=info["created_at"],
            started_at=info["started_at"],
            finished_at=info["finished_at"],
            rate_limit=census.rate,
            deadline=census.deadline,
            max_attempts=census.max_attempts,
            transport=settings.transport if settings is not None else None,
            checks=list(settings.checks) if settings is not None else [],
            checked=checked,
            compromised=compromised,
            parked=listed["parked"],
            retrying=listed["retrying"],
            running=listed["running"],
        )


def cancel(db: str, scan_id: str | None = None) -> tuple[str, dict[str, int]]:
    """Cancel a census: (its id, tasks per state afterwards)."""
    require_postgres(db)
    with open_store(db, create=False) as store:
        book = _book(store)
        census = find_census(book, store, scan_id)
        return census.scan_id, book.cancel(census.scan_id)


__all__ = ["CensusStatus", "cancel", "census_status"]
