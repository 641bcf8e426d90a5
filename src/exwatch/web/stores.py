"""Store handles for the web server: one per request, never shared between threads.

A DuckDB file admits one writer process at a time, and a scan writing into it opens the file
for each batch.  The server therefore holds the file only while it answers a request (the
scan waits milliseconds, as it does for a report), and closes it in between.  PostgreSQL
connections are kept in a small pool: opening one costs more than most page queries.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

from exwatch.store import Store, open_store, parse_location
from exwatch.store.duck import DuckStore

POOL_SIZE = 4  # PostgreSQL connections kept open (the server runs page queries in threads)


class StorePool:
    """Hands out an open store for the duration of one request."""

    def __init__(self, db: str, *, wait: float = 30.0) -> None:
        self.db = db
        self.location = parse_location(db)
        self.wait = wait
        self._idle: queue.LifoQueue[Store] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._made = 0
        self.read_only = False
        # Open once now: a bad --db is reported when the server starts, not at the first page.
        with self.session() as store:
            self.read_only = store.read_only
            self.display = store.location

    def _open(self) -> Store:
        store = open_store(self.db, create=False, transient=True, wait=self.wait)
        if isinstance(store, DuckStore):
            store.hold()
        return store

    @contextlib.contextmanager
    def session(self) -> Iterator[Store]:
        if self.location.backend == "duckdb":
            store = self._open()
            try:
                yield store
            finally:
                store.close()
            return
        try:
            store = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                fresh = self._made < POOL_SIZE
                if fresh:
                    self._made += 1
            store = self._open() if fresh else self._idle.get(timeout=self.wait)
        broken = False
        try:
            yield store
        except BaseException:
            broken = True
            raise
        finally:
            if broken:
                # A failed statement may leave the connection unusable: replace it.
                with contextlib.suppress(Exception):
                    store.close()
                store = self._open()
            self._idle.put(store)

    def close(self) -> None:
        while True:
            try:
                store = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                store.close()


__all__ = ["POOL_SIZE", "StorePool"]
