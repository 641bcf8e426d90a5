"""The notify tables on both backends: created on every writable open of a schema-2 store
that lacks them (no version bump), absent tables tolerated by readers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exwatch.errors import StoreError
from exwatch.net.smtp import SmtpSettings
from exwatch.notify.render import Sender
from exwatch.notify.run import Options, run
from exwatch.store import open_store
from exwatch.store.schema import LATER_TABLES, SCHEMA_VERSION
from tests.notify.records import OLD, exchange, store_with
from tests.notify.runs import messages, notify


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_an_older_schema_2_store_gains_the_tables_when_opened(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    scans = {"census": [exchange("census", "193.190.10.1", "2026-03-01", OLD)]}
    db, const = store_with(tmp_path, kind, request, scans)
    with open_store(db, create=False) as store:
        for name in ("notifications", "notification_items", "notify_cases", "security_txt"):
            assert name in LATER_TABLES
            store.execute(f"DROP TABLE {name}")
        assert not store.has_table("notifications")
    with open_store(db, create=False) as store:  # as a store written before notify existed
        assert all(store.has_table(name) for name in LATER_TABLES)
        assert store.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(
            SCHEMA_VERSION
        )
    code, _ = notify(db, tmp_path / "out", "2026-03-02T09:00:00Z", constituency=const)
    assert code == 0
    assert len(messages(tmp_path / "out")) == 1


def test_a_read_only_store_without_the_tables_still_gives_a_dry_run(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    scans = {"census": [exchange("census", "193.190.10.1", "2026-03-01", OLD)]}
    db, _ = store_with(tmp_path, "duckdb", request, scans)
    with open_store(db, create=False) as store:
        for name in LATER_TABLES:
            store.execute(f"DROP TABLE {name}")
    options = Options(
        sender=Sender("CERT", "cert@cert.example"),
        out_dir=tmp_path / "out",
        now=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )
    with open_store(db, create=False, read_only=True) as store:
        assert store.read_only
        outcome = run(store, options)
        assert not store.has_table("notifications")
    assert (outcome.planned, outcome.written) == (1, 1)
    with (
        open_store(db, create=False, read_only=True) as store,
        pytest.raises(StoreError, match="read-only: sending needs a writable store"),
    ):
        run(store, replace(options, out_dir=tmp_path / "send", smtp=SmtpSettings("127.0.0.1", 1)))
