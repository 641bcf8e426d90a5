"""Store handles for the web server: one per request, never shared between threads.

A DuckDB file admits one writer process at a time, and a scan writing into it opens the file
for each batch.  The server keeps the file open only while it answers requests and for a
moment after the last one (`LINGER`), so that a page view costs no reopening while a scan
still finds the file free between page views (it waits milliseconds, as for a report).
Each request gets its own connection to the open database (DuckDB connections are not
shared between threads).  PostgreSQL connections are kept in a small pool.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator

import duckdb

from exwatch.errors import StoreError
from exwatch.store import Store, open_store, parse_location
from exwatch.store.duck import DuckStore

POOL_SIZE = 4  # PostgreSQL connections kept open (the server runs page queries in threads)
LINGER = 1.0  # seconds a DuckDB file stays open after the last request


class StorePool:
    """Hands out an open store for the duration of one request."""

    def __init__(self, db: str, *, wait: float = 30.0, linger: float = LINGER) -> None:
        self.db = db
        self.location = parse_location(db)
        self.wait = wait
        self.linger = linger
        self._idle: queue.LifoQueue[Store] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._made = 0
        self._root: DuckStore | None = None
        self._active = 0
        self._last = 0.0
        self._closer: threading.Thread | None = None
        self._closed = False
        self.read_only = False
        # Open once now: a bad --db is reported when the server starts, not at the first page.
        with self.session() as store:
            self.read_only = store.read_only
            self.display = store.location

    def _open(self) -> Store:
        store = open_store(self.db, create=False, transient=True, wait=self.wait)
        if isinstance(store, DuckStore):
            store.hold()
        elif store.dialect.name == "postgresql":
            # Pages run short queries; the planner's cost of a subquery that never runs (a
            # scan's start read from its results when unset) crosses the JIT threshold,
            # and compiling costs a quarter of a second a page at ten million results.
            store.execute("SET jit = off")
        return store

    @contextlib.contextmanager
    def _duck(self) -> Iterator[Store]:
        with self._lock:
            if self._root is None:
                root = self._open()
                assert isinstance(root, DuckStore)
                self._root = root
            root = self._root
            assert root._con is not None
            con = root._con.cursor()
            self._active += 1
        try:
            con.execute("SET TimeZone = 'UTC'")
            store = DuckStore(root.path, read_only=root.read_only)
            store._con = con
            yield store
        finally:
            with contextlib.suppress(duckdb.Error):
                con.close()
            with self._lock:
                self._active -= 1
                self._last = time.monotonic()
                if self._closer is None and not self._closed:
                    self._closer = threading.Thread(target=self._close_idle, daemon=True)
                    self._closer.start()

    def _close_idle(self) -> None:
        while True:
            time.sleep(min(0.2, self.linger))
            with self._lock:
                if self._root is None or self._closed:
                    self._closer = None
                    return
                if not self._active and time.monotonic() - self._last >= self.linger:
                    self._root.close()
                    self._root = None
                    self._closer = None
                    return

    @contextlib.contextmanager
    def session(self) -> Iterator[Store]:
        if self.location.backend == "duckdb":
            with self._duck() as store:
                yield store
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
        except StoreError:
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
        with self._lock:
            self._closed = True
            if self._root is not None:
                self._root.close()
                self._root = None
        while True:
            try:
                store = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                store.close()


__all__ = ["LINGER", "POOL_SIZE", "StorePool"]
