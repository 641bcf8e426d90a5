"""The result store: DuckDB file with scans and typed results, bulk append and JSONL ingest."""

from __future__ import annotations

from exwatch.store.database import DEFAULT_PATH, LoadStats, Store
from exwatch.store.ingest import IngestSummary, ingest_files

__all__ = ["DEFAULT_PATH", "IngestSummary", "LoadStats", "Store", "ingest_files"]
