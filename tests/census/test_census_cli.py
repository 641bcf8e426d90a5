"""The census commands refuse what cannot work, with one clear line and nothing half done."""

from __future__ import annotations

from pathlib import Path

from exwatch.store import open_store
from tests.census.cluster import exwatch
from tests.lab.running import free_port
from tests.store.backends import pg_database, pg_store_url  # noqa: F401  (fixture)


def _refused(*args: str, code: int = 2) -> str:
    done = exwatch(*args, check=False)
    assert done.returncode == code, f"{done.stdout}\n{done.stderr}"
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


def test_census_and_worker_refuse_a_duckdb_store(tmp_path: Path) -> None:
    path = tmp_path / "census.duckdb"
    err = _refused(
        "census", "submit", "127.16.0.1", "--allow-private", "--db", str(path),
        "--broker", "redis://127.0.0.1:6379/1",
    )  # fmt: skip
    assert "needs a PostgreSQL store" in err
    assert "one writer process at a time" in err
    err = _refused("worker", "--db", str(path), "--broker", "redis://127.0.0.1:6379/1")
    assert "needs a PostgreSQL store" in err
    assert not path.exists()


def test_submit_refuses_an_unknown_broker_scheme(pg_database: str) -> None:  # noqa: F811
    err = _refused(
        "census", "submit", "127.16.0.1", "--allow-private", "--db", pg_store_url(pg_database),
        "--broker", "http://127.0.0.1:5672/",
    )  # fmt: skip
    assert "Redis" in err
    assert "RabbitMQ" in err


def test_unreachable_broker_records_nothing(pg_database: str) -> None:  # noqa: F811
    db = pg_store_url(pg_database)
    err = _refused(
        "census", "submit", "127.16.0.1", "--allow-private", "--db", db,
        "--broker", f"redis://:secret@127.0.0.1:{free_port()}/0", code=1,
    )  # fmt: skip
    assert "cannot reach the broker" in err
    assert "secret" not in err
    with open_store(db) as store:
        assert store.result_count() == 0
        assert store.scan_ids() == []
        assert store.query("SELECT count(*) FROM census")[0][0] == 0
    assert "no census" in _refused("census", "status", "--db", db)


def test_submit_refuses_loopback_without_allow_private(pg_database: str) -> None:  # noqa: F811
    err = _refused(
        "census", "submit", "127.16.0.1", "--db", pg_store_url(pg_database),
        "--broker", "redis://127.0.0.1:6379/1",
    )  # fmt: skip
    assert "private, loopback or reserved" in err


def test_status_and_cancel_name_a_census_that_is_not_there(pg_database: str) -> None:  # noqa: F811
    db = pg_store_url(pg_database)
    assert "holds no exwatch store" in _refused("census", "status", "--db", db, code=1)
    with open_store(db):
        pass
    assert "no census" in _refused("census", "status", "nosuch", "--db", db)
    assert "no census" in _refused("census", "cancel", "nosuch", "--db", db)


def test_submit_names_a_missing_target_list(tmp_path: Path) -> None:
    err = _refused(
        "census", "submit", "-l", str(tmp_path / "nosuch.txt"), "--db", "postgresql://x@y/z",
        "--broker", "redis://127.0.0.1:6379/1",
    )  # fmt: skip
    assert "target list not found" in err
