"""Tables the web pages derive from a scan (`web_groups`, `web_names`), each kept with the
stamp of what it was built from in `<table>_state` and rebuilt when that stamp changed.

Built on first need, under a process lock (one builder per table in a server) and the
store's lock (one builder across servers sharing a PostgreSQL store), and checked again
once both are held: whoever waited finds the table built and returns.
"""

# SQL here is assembled from this package's fixed table names; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import threading
from collections.abc import Callable

from exwatch.store import Store
from exwatch.store.schema import create_table

_GUARDS: dict[str, threading.Lock] = {}


def current(store: Store, table: str, scan_id: str, stamp: str) -> bool:
    """Whether `table` holds the scan's rows as of `stamp`."""
    state = f"{table}_state"
    if not store.has_table(state):
        return False
    built = store.scalar(f"SELECT stamp FROM {state} WHERE scan_id = ?", [scan_id])
    return built is not None and str(built) == stamp


def rebuild(store: Store, table: str, scan_id: str, stamp: str, fill: Callable[[], None]) -> None:
    """Unless `table` is current: delete the scan's rows, `fill()` them again (in the same
    transaction), and record `stamp`."""
    if current(store, table, scan_id, stamp):
        return
    guard = _GUARDS.setdefault(table, threading.Lock())
    with guard, store.transaction():
        for name in (table, f"{table}_state"):
            store.execute(create_table(store.dialect, name))
        store.lock(f"{table.replace('_', '-')}:{scan_id}")
        if current(store, table, scan_id, stamp):
            return
        store.execute(f"DELETE FROM {table} WHERE scan_id = ?", [scan_id])
        fill()
        store.execute(f"DELETE FROM {table}_state WHERE scan_id = ?", [scan_id])
        store.execute(f"INSERT INTO {table}_state (scan_id, stamp) VALUES (?, ?)", [scan_id, stamp])


__all__ = ["current", "rebuild"]
