"""Census bookkeeping in the store: a census, its tasks and its shared rate budget.

A distributed census (`exwatch census submit`) is one scan: every task writes its results
under the census's scan id, so reports, diffs and exports treat it like any other scan.
Beside the scan, `census` holds what the workers need and `census_tasks` one row per task
(a range of positions of the census's permutation).

Exactly once, whatever the broker does: every start of a task (`claim`) increments its
`attempts`, and every write of results (`write`) and every end (`finish`, `fail`) names the
attempt it belongs to and is refused once a later attempt has started.  Both take the same
task lock, so an attempt that a broker redelivered while the first one was still writing
(a lost connection, an expired visibility timeout) never stores a row twice: the new
attempt starts after the old one's last write, reads which of its targets are stored
(`stored_targets`) and skips them.  A task whose attempts run out is parked with its error.

Locks, always taken in this order: the census, then a task (claims and ends take both,
writes only the task's).  The census row is also the global rate budget: `lease` hands out
the next slots of one schedule shared by every worker.

The opt-in checks run at most once per host per census: `census_checks` holds one claim per
(ip, port), taken before the checks start (`claim_check`), with what they found once they
end (`keep_check`); a write marks the claims its records carry as stored.
"""

# Statements here are assembled from this module's constant names; values are bound.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exwatch.errors import StoreError
from exwatch.store.base import Store, now
from exwatch.store.schema import CENSUS_TASKS, Column

CENSUS_STATES = ("queued", "running", "finished", "incomplete", "cancelled")
TASK_STATES = ("pending", "running", "retrying", "done", "parked", "cancelled")
OPEN_TASKS = ("pending", "running", "retrying")
_OPEN = "('pending', 'running', 'retrying')"
_ERROR_CHARS = 2000  # an error kept per task (a traceback's last lines fit)


@dataclass(frozen=True, slots=True)
class Claim:
    """An attempt that may run: its number and the range of positions it scans."""

    attempt: int
    start: int
    stop: int
    resumed: bool  # earlier attempts stored results: skip what is stored


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a delivered task is not run (done, parked, cancelled, unknown census)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Census:
    scan_id: str
    queue: str
    broker: str
    settings: dict[str, Any]
    status: str
    targets: int
    tasks: int
    task_size: int
    deadline: float
    max_attempts: int
    rate: float | None


def _clip(text: str) -> str:
    return text if len(text) <= _ERROR_CHARS else "..." + text[-_ERROR_CHARS:]


class CensusBook:
    """The census tables of one store (PostgreSQL: several machines use them at once)."""

    def __init__(self, store: Store) -> None:
        if store.dialect.name != "postgresql":
            raise StoreError(
                f"{store.location}: a census needs a PostgreSQL store (postgresql://...):"
                " workers on several machines write it at once, and a DuckDB file has one"
                " writer process at a time"
            )
        self.store = store

    # -- submit ----------------------------------------------------------------------------

    def create(
        self,
        census: Census,
        ranges: Sequence[tuple[int, int]],
        positions: int,
    ) -> None:
        """Record a census and its tasks (all pending), in one transaction."""
        s = self.store
        with s.transaction():
            s.lock(f"census:{census.scan_id}")
            found = s.query("SELECT status FROM census WHERE scan_id = ?", [census.scan_id])
            if found:
                raise StoreError(
                    f"census {census.scan_id} was already submitted to {s.location}"
                    f" ({found[0][0]}); see `exwatch census status`, or give another --scan-id"
                )
            s.execute(
                "INSERT INTO census (scan_id, queue, broker, settings, status, targets,"
                " positions, task_size, tasks, deadline, max_attempts, rate, created_at)"
                " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    census.scan_id,
                    census.queue,
                    census.broker,
                    json.dumps(census.settings, sort_keys=True),
                    census.targets,
                    positions,
                    census.task_size,
                    len(ranges),
                    census.deadline,
                    census.max_attempts,
                    census.rate,
                    now(),
                ],
            )
            s.bulk_insert(
                "census_tasks",
                [c for c in CENSUS_TASKS if c[0] in _NEW_TASK],
                (
                    (census.scan_id, n, start, stop, "pending", 0, 0, 0, 0)
                    for n, (start, stop) in enumerate(ranges)
                ),
            )

    # -- reading ---------------------------------------------------------------------------

    def census(self, scan_id: str) -> Census | None:
        rows = self.store.query(
            "SELECT scan_id, queue, broker, settings, status, targets, tasks, task_size,"
            " deadline, max_attempts, rate FROM census WHERE scan_id = ?",
            [scan_id],
        )
        if not rows:
            return None
        r = rows[0]
        settings = json.loads(r[3]) if isinstance(r[3], str) else r[3]
        return Census(
            scan_id=str(r[0]),
            queue=str(r[1]),
            broker=str(r[2]),
            settings=settings,
            status=str(r[4]),
            targets=int(r[5] or 0),
            tasks=int(r[6] or 0),
            task_size=int(r[7] or 0),
            deadline=float(r[8]),
            max_attempts=int(r[9]),
            rate=None if r[10] is None else float(r[10]),
        )

    def latest(self) -> str | None:
        row = self.store.query(
            "SELECT scan_id FROM census ORDER BY created_at DESC, scan_id DESC LIMIT 1"
        )
        return str(row[0][0]) if row else None

    def overview(self, scan_id: str) -> dict[str, Any]:
        """The census row with its task counts per status and summed progress."""
        d = self.store.dialect
        rows = self.store.dicts(
            "SELECT c.scan_id, c.queue, c.broker, c.status, c.targets, c.tasks, c.task_size,"
            " c.deadline, c.max_attempts, c.rate,"
            f" {d.iso('c.created_at')} AS created_at, {d.iso('c.started_at')} AS started_at,"
            f" {d.iso('c.finished_at')} AS finished_at,"
            " extract(epoch FROM coalesce(c.finished_at, now()) - c.started_at) AS elapsed"
            " FROM census c WHERE c.scan_id = ?",
            [scan_id],
        )
        if not rows:
            raise StoreError(f"no census {scan_id} in {self.store.location}")
        info = rows[0]
        counts = {state: 0 for state in TASK_STATES}
        totals = {"scanned": 0, "exchange": 0, "vulnerable": 0, "attempts": 0}
        for status, n, scanned, exchange, vulnerable, attempts in self.store.query(
            "SELECT status, count(*), sum(scanned), sum(exchange), sum(vulnerable),"
            " sum(attempts) FROM census_tasks WHERE scan_id = ? GROUP BY status",
            [scan_id],
        ):
            counts[str(status)] = int(n)
            totals["scanned"] += int(scanned or 0)
            totals["exchange"] += int(exchange or 0)
            totals["vulnerable"] += int(vulnerable or 0)
            totals["attempts"] += int(attempts or 0)
        info["elapsed"] = None if info["elapsed"] is None else float(info["elapsed"])
        info["rate"] = None if info["rate"] is None else float(info["rate"])
        info["tasks_by_status"] = counts
        info.update(totals)
        return info

    def tasks(
        self, scan_id: str, statuses: Iterable[str], limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Tasks in these states, in task order, with their progress and last error."""
        d = self.store.dialect
        where, args = d.in_list("status", list(statuses))
        sql = (
            "SELECT task, start_pos, stop_pos, status, attempts, worker, scanned, exchange,"
            f" error, {d.iso('started_at')} AS started_at, {d.iso('updated_at')} AS updated_at"
            f" FROM census_tasks WHERE scan_id = ? AND {where} ORDER BY task"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.store.dicts(sql, [scan_id, *args])

    # -- a task's life ---------------------------------------------------------------------

    def claim(self, scan_id: str, task: int, worker: str) -> Claim | Refusal:
        """Start the next attempt of a task, or say why it must not run.

        A task still marked running was delivered again because its attempt ended without
        a word (worker killed, machine lost, hard time limit): that counts as a failed
        attempt, and a task out of attempts is parked instead of run.
        """
        s = self.store
        with s.transaction():
            s.lock(f"census:{scan_id}")
            s.lock(f"census-task:{scan_id}:{task}")
            census = s.query("SELECT status, max_attempts FROM census WHERE scan_id = ?", [scan_id])
            if not census:
                return Refusal(f"no census {scan_id} in {s.location}")
            census_status, max_attempts = str(census[0][0]), int(census[0][1])
            rows = s.query(
                "SELECT status, attempts, worker, error, start_pos, stop_pos, scanned"
                " FROM census_tasks WHERE scan_id = ? AND task = ?",
                [scan_id, task],
            )
            if not rows:
                return Refusal(f"census {scan_id} has no task {task}")
            status, attempts, last_worker, error, start, stop, scanned = rows[0]
            if status in ("done", "parked", "cancelled"):
                return Refusal(f"task {task} is {status}")
            if census_status == "cancelled":
                self._set_end(scan_id, task, "cancelled", error)
                self._maybe_close(scan_id)
                return Refusal("the census was cancelled")
            if status == "running":
                error = (
                    f"attempt {attempts} on {last_worker} ended without reporting back"
                    " (worker killed, machine lost or hard time limit)"
                )
            attempts = int(attempts) + 1
            if attempts > max_attempts:
                self._set_end(scan_id, task, "parked", error)
                self._maybe_close(scan_id)
                return Refusal(f"task {task} is parked after {attempts - 1} attempts: {error}")
            stamp = now()
            s.execute(
                "UPDATE census_tasks SET status = 'running', attempts = ?, worker = ?,"
                " started_at = ?, updated_at = ?, error = ? WHERE scan_id = ? AND task = ?",
                [attempts, worker, stamp, stamp, error, scan_id, task],
            )
            s.execute(
                "UPDATE census SET status = 'running', started_at = coalesce(started_at, ?)"
                " WHERE scan_id = ? AND status = 'queued'",
                [stamp, scan_id],
            )
        return Claim(attempts, int(start), int(stop), bool(scanned))

    def write(
        self,
        scan_id: str,
        task: int,
        attempt: int,
        records: Sequence[Mapping[str, Any]],
        exchange: int,
        vulnerable: int,
    ) -> tuple[str, int]:
        """Store a batch of an attempt's records with its progress; returns ("ok" |
        "cancelled" | "superseded", rows stored).  A superseded attempt stores nothing
        (the attempt that replaced it scans those targets); a cancelled census keeps
        what was found."""
        s = self.store
        with s.transaction():
            s.lock(f"census-task:{scan_id}:{task}")
            rows = s.query(
                "SELECT t.attempts, t.status, c.status FROM census_tasks t JOIN census c"
                " ON c.scan_id = t.scan_id WHERE t.scan_id = ? AND t.task = ?",
                [scan_id, task],
            )
            if not rows or int(rows[0][0]) != attempt or rows[0][1] != "running":
                return "superseded", 0
            stored = s.append(records, scan_id=scan_id) if records else 0
            checked = [
                (str(r["ip"]), int(r["port"]))
                for r in records
                if isinstance(r.get("checks"), dict) and r["checks"].get("ran")
            ]
            if checked:
                # The census's checked hosts are counted from what was stored, as a scan's.
                s.execute(
                    "UPDATE census_checks SET stored = TRUE WHERE scan_id = ? AND (ip, port) IN"
                    " (SELECT * FROM unnest(?::text[], ?::int[]))",
                    [scan_id, [ip for ip, _ in checked], [port for _, port in checked]],
                )
            s.execute(
                "UPDATE census_tasks SET scanned = scanned + ?, exchange = exchange + ?,"
                " vulnerable = vulnerable + ?, updated_at = ? WHERE scan_id = ? AND task = ?",
                [stored, exchange, vulnerable, now(), scan_id, task],
            )
            return ("cancelled" if rows[0][2] == "cancelled" else "ok"), stored

    def finish(self, scan_id: str, task: int, attempt: int, status: str = "done") -> bool:
        """End an attempt that scanned its whole range (or stopped for a cancel); False
        when a later attempt had replaced it."""
        s = self.store
        with s.transaction():
            s.lock(f"census:{scan_id}")
            s.lock(f"census-task:{scan_id}:{task}")
            if not self._current(scan_id, task, attempt):
                return False
            self._set_end(scan_id, task, status, None)
            self._maybe_close(scan_id)
        return True

    def fail(self, scan_id: str, task: int, attempt: int, error: str) -> str:
        """Record a failed attempt: "retry" (attempts left), "parked", or "superseded"."""
        s = self.store
        with s.transaction():
            s.lock(f"census:{scan_id}")
            s.lock(f"census-task:{scan_id}:{task}")
            if not self._current(scan_id, task, attempt):
                return "superseded"
            census = s.query("SELECT status, max_attempts FROM census WHERE scan_id = ?", [scan_id])
            if census and census[0][0] == "cancelled":
                self._set_end(scan_id, task, "cancelled", _clip(error))
                self._maybe_close(scan_id)
                return "cancelled"
            if census and attempt >= int(census[0][1]):
                self._set_end(scan_id, task, "parked", _clip(error))
                self._maybe_close(scan_id)
                return "parked"
            s.execute(
                "UPDATE census_tasks SET status = 'retrying', error = ?, updated_at = ?"
                " WHERE scan_id = ? AND task = ?",
                [_clip(error), now(), scan_id, task],
            )
        return "retry"

    def _current(self, scan_id: str, task: int, attempt: int) -> bool:
        rows = self.store.query(
            "SELECT attempts, status FROM census_tasks WHERE scan_id = ? AND task = ?",
            [scan_id, task],
        )
        return bool(rows) and int(rows[0][0]) == attempt and rows[0][1] == "running"

    def _set_end(self, scan_id: str, task: int, status: str, error: str | None) -> None:
        stamp = now()
        self.store.execute(
            "UPDATE census_tasks SET status = ?, error = ?, finished_at = ?, updated_at = ?"
            " WHERE scan_id = ? AND task = ?",
            [status, error, stamp, stamp, scan_id, task],
        )

    def _maybe_close(self, scan_id: str) -> None:
        """Once no task is open, the census (and its scan) ends: finished when every task
        is done, incomplete when some were parked; a cancelled census stays cancelled."""
        s = self.store
        if s.query(
            f"SELECT 1 FROM census_tasks WHERE scan_id = ? AND status IN {_OPEN} LIMIT 1",
            [scan_id],
        ):
            return
        row = s.query("SELECT status FROM census WHERE scan_id = ?", [scan_id])
        if not row:
            return
        if row[0][0] == "cancelled":
            state = "cancelled"
        else:
            parked = s.query(
                "SELECT 1 FROM census_tasks WHERE scan_id = ? AND status <> 'done' LIMIT 1",
                [scan_id],
            )
            state = "incomplete" if parked else "finished"
        s.execute(
            "UPDATE census SET status = ?, finished_at = coalesce(finished_at, ?)"
            " WHERE scan_id = ?",
            [state, now(), scan_id],
        )
        part_open = s.query(
            "SELECT 1 FROM scan_parts WHERE scan_id = ? AND part = '1/1' AND status = 'running'",
            [scan_id],
        )
        if part_open:
            s.finish_scan(scan_id, "finished" if state == "finished" else "interrupted")

    # -- what a redelivered attempt skips --------------------------------------------------

    def stored_targets(
        self,
        scan_id: str,
        addresses: Iterable[tuple[str, int]],
        hostnames: Iterable[tuple[str, int]],
    ) -> set[tuple[str, int]]:
        """(ip, port) of this census already stored among these targets: (address, port)
        pairs, and whatever the (hostname, port) pairs resolved to."""
        s = self.store
        found: set[tuple[str, int]] = set()
        keys: list[Column] = [("v", "text"), ("port", "int")]
        with s.transaction():
            for column, values in (("ip", addresses), ("hostname", hostnames)):
                stage = f"census_keys_{column}"
                s.staging_table(stage, keys)
                if not s.bulk_insert(stage, keys, values):
                    continue
                for ip, port in s.query(
                    f"SELECT r.ip, r.port FROM results r JOIN {stage} k"
                    f" ON r.{column} = k.v AND r.port = k.port WHERE r.scan_id = ?",
                    [scan_id],
                ):
                    found.add((str(ip), int(port)))
        return found

    # -- the opt-in checks: each host once per census -------------------------------------

    def claim_check(
        self, scan_id: str, ip: str, port: int, task: int, run: str
    ) -> bool | dict[str, Any]:
        """Claim a host for the census's checks on behalf of attempt `run` of `task`: True
        when this attempt is the first to ask (check it now), False when another claim
        holds it (checked already in this census), or the `checks` object an earlier,
        ended attempt of the same task kept for it while the record that carried it was
        never stored (reused, so nothing is sent twice and nothing found is lost).

        An earlier attempt of the same task has ended: a new attempt starts only once the
        previous one is over or fenced off (its writes are refused), so its result can
        never reach the store by another record."""
        rows = self.store.query(
            "INSERT INTO census_checks AS c (scan_id, ip, port, task, run, claimed_at, stored)"
            " VALUES (?, ?, ?, ?, ?, ?, FALSE) ON CONFLICT (scan_id, ip, port) DO UPDATE"
            " SET run = excluded.run, claimed_at = excluded.claimed_at"
            " WHERE c.task = excluded.task AND c.run <> excluded.run"
            " AND c.result IS NOT NULL AND NOT c.stored RETURNING c.result",
            [scan_id, ip, port, task, run, now()],
        )
        if not rows:
            return False
        kept = rows[0][0]
        if kept is None:
            return True
        result = json.loads(kept) if isinstance(kept, str) else kept
        return result if isinstance(result, dict) else False

    def keep_check(
        self, scan_id: str, ip: str, port: int, run: str, result: Mapping[str, Any]
    ) -> None:
        """Keep what the checks found on a host this attempt claimed (the record's `checks`)."""
        judged = result.get("compromise")
        compromised = isinstance(judged, dict) and judged.get("state") == "compromised"
        self.store.execute(
            "UPDATE census_checks SET result = ?, compromised = ?"
            " WHERE scan_id = ? AND ip = ? AND port = ? AND run = ?",
            [json.dumps(result, sort_keys=True), compromised, scan_id, ip, port, run],
        )

    def checked(self, scan_id: str) -> tuple[int, int]:
        """(hosts the census's checks ran on, of those compromised), from stored records."""
        if not self.store.has_table("census_checks"):
            return 0, 0
        row = self.store.query(
            "SELECT count(*) FILTER (WHERE stored),"
            " count(*) FILTER (WHERE stored AND compromised)"
            " FROM census_checks WHERE scan_id = ?",
            [scan_id],
        )
        return (int(row[0][0] or 0), int(row[0][1] or 0)) if row else (0, 0)

    # -- operator actions ------------------------------------------------------------------

    def cancel(self, scan_id: str) -> dict[str, int]:
        """Stop a census: tasks not started are cancelled, running ones stop at their next
        write (keeping what they found).  Returns the tasks per state afterwards."""
        s = self.store
        with s.transaction():
            s.lock(f"census:{scan_id}")
            row = s.query("SELECT status FROM census WHERE scan_id = ?", [scan_id])
            if not row:
                raise StoreError(f"no census {scan_id} in {s.location}")
            if row[0][0] in ("queued", "running"):
                s.execute("UPDATE census SET status = 'cancelled' WHERE scan_id = ?", [scan_id])
                stamp = now()
                s.execute(
                    "UPDATE census_tasks SET status = 'cancelled', finished_at = ?,"
                    " updated_at = ? WHERE scan_id = ? AND status IN ('pending', 'retrying')",
                    [stamp, stamp, scan_id],
                )
                self._maybe_close(scan_id)
        counts = {str(k): int(n) for k, n in s.query(
            "SELECT status, count(*) FROM census_tasks WHERE scan_id = ? GROUP BY status",
            [scan_id],
        )}  # fmt: skip
        return counts

    def reopen(self, scan_id: str, statuses: Sequence[str]) -> list[int]:
        """Put tasks in these states back to pending with fresh attempts (for `census
        retry`); the census runs again.  Returns the tasks to enqueue."""
        s = self.store
        with s.transaction():
            s.lock(f"census:{scan_id}")
            row = s.query("SELECT status FROM census WHERE scan_id = ?", [scan_id])
            if not row:
                raise StoreError(f"no census {scan_id} in {s.location}")
            where, args = s.dialect.in_list("status", list(statuses))
            tasks = [int(r[0]) for r in s.query(
                f"SELECT task FROM census_tasks WHERE scan_id = ? AND {where} ORDER BY task",
                [scan_id, *args],
            )]  # fmt: skip
            if not tasks:
                return []
            s.execute(
                "UPDATE census_tasks SET status = 'pending', attempts = 0, finished_at = NULL"
                f" WHERE scan_id = ? AND {where}",
                [scan_id, *args],
            )
            s.execute(
                "UPDATE census SET status = CASE WHEN started_at IS NULL THEN 'queued'"
                " ELSE 'running' END, finished_at = NULL WHERE scan_id = ?",
                [scan_id],
            )
            if s.query(
                "SELECT 1 FROM scan_parts WHERE scan_id = ? AND part = '1/1'"
                " AND status <> 'running'",
                [scan_id],
            ):
                s.resume_scan(scan_id)
        return tasks

    # -- the global rate budget ------------------------------------------------------------

    def lease(self, scan_id: str, slots: int, interval: float) -> tuple[float, float]:
        """Reserve the next `slots` connection slots, `interval` seconds apart, of the
        census's one schedule: (time of the first slot, time now), both in the database
        server's clock, so that machines whose clocks differ still share one schedule."""
        rows = self.store.query(
            "UPDATE census SET rate_next = greatest(coalesce(rate_next, 0),"
            " extract(epoch FROM clock_timestamp())) + ? WHERE scan_id = ?"
            " RETURNING rate_next - ?, extract(epoch FROM clock_timestamp())",
            [slots * interval, scan_id, slots * interval],
        )
        if not rows:
            raise StoreError(f"no census {scan_id} in {self.store.location}")
        return float(rows[0][0]), float(rows[0][1])


# The columns a new task row fills (the rest start NULL).
_NEW_TASK = frozenset(
    ("scan_id", "task", "start_pos", "stop_pos", "status", "attempts", "scanned", "exchange",
     "vulnerable")
)  # fmt: skip


__all__ = [
    "CENSUS_STATES",
    "OPEN_TASKS",
    "TASK_STATES",
    "Census",
    "CensusBook",
    "Claim",
    "Refusal",
]
