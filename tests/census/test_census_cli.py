"""The census commands refuse what cannot work, with one clear line and nothing half done."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from exwatch.store import open_store
from tests.census.cluster import broker_url, drop_queue, exwatch, require_broker, unique_queue
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


def _queued(url: str, queue: str) -> int:
    """Messages waiting on a Redis queue (kombu keeps one list per queue)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.llen(queue))
    finally:
        client.close()


def test_submit_refuses_an_unknown_check_with_nothing_recorded_or_published(
    pg_database: str,  # noqa: F811
) -> None:
    url = broker_url("redis")
    require_broker(url)
    queue = unique_queue()
    db = pg_store_url(pg_database)
    submit = [
        "census", "submit", "127.16.0.1-127.16.0.4", "--allow-private", "--db", db,
        "--broker", url, "--queue", queue, "--task-size", "2",
    ]  # fmt: skip
    try:
        err = _refused(*submit, "--check", "webshells,nonsense")
        assert "unknown check(s): nonsense" in err  # as `scan --check` says it
        assert "groups: all-safe" in err
        with open_store(db) as store:
            assert store.query("SELECT count(*) FROM census")[0][0] == 0
            assert store.scan_ids() == []
        assert _queued(url, queue) == 0
        # The same census with known checks is recorded and published, checks included.
        done = exwatch(*submit, "--check", "webshells", "--check", "proxylogon", "--scan-id", "c1")
        assert "2 tasks" in done.stdout
        assert _queued(url, queue) == 2
        with open_store(db) as store:
            (settings,) = store.query("SELECT settings FROM census WHERE scan_id = 'c1'")[0]
            params = store.scan_info("c1")["params"]
        stored = json.loads(settings) if isinstance(settings, str) else settings
        assert (stored["checks"], stored["transport"]) == (["proxylogon", "webshells"], "python")
        params = json.loads(params) if isinstance(params, str) else params
        assert params["checks"] == ["proxylogon", "webshells"]
    finally:
        drop_queue(url, queue)


_WITHOUT_WREQ = (
    "import sys; sys.modules['wreq'] = None"  # `import wreq` fails, as where it is not installed
    "; from exwatch.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_transport_wreq_without_the_extra_is_refused_as_scan_refuses_it(
    pg_database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = pg_store_url(pg_database)

    def without_wreq(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _WITHOUT_WREQ, *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        return done.stderr.strip()

    out = tmp_path / "r.jsonl"
    scan = without_wreq(
        "scan", "127.16.0.9", "--allow-private", "--no-db", "-o", str(out),
        "--user-agent", "exwatch test", "--transport", "wreq",
    )  # fmt: skip
    census = without_wreq(
        "census", "submit", "127.16.0.9", "--allow-private", "--db", db,
        "--broker", "redis://127.0.0.1:6379/1", "--transport", "wreq",
    )  # fmt: skip
    assert census == scan
    assert "--transport wreq needs the optional dependency: pip install 'exwatch[fast]'" in census
    assert not out.exists()
    with open_store(db) as store:
        assert store.query("SELECT count(*) FROM census")[0][0] == 0


def test_submit_help_lists_the_checks_and_transports_as_scan_does() -> None:
    scan = exwatch("scan", "--help").stdout
    census = exwatch("census", "submit", "--help").stdout
    for text in (scan, census):
        assert "--transport [python|wreq]" in text
        assert "--check ID,..." in text
        assert "all-safe = proxylogon, proxyshell, proxynotshell-mitigation, webshells" in text
    # the list of every check and its requests is the same text under both commands
    assert (
        scan[scan.index("Opt-in checks (--check") :]
        == census[census.index("Opt-in checks (--check") :]
    )


def test_a_pool_process_dies_by_sigkill_with_its_worker() -> None:
    """What a worker's pool process asks Linux to send it when the worker dies: SIGKILL,
    which nothing can catch.  SIGTERM became a SystemExit that billiard raised wherever the
    process was, and one raised inside a weakref callback was ignored: the orphan finished
    its task, and the census never ran that task again (a CI run of
    test_worker_killed_mid_census_loses_nothing)."""
    import ctypes
    import os
    import signal

    from exwatch.cli.worker_cmd import _pool_process_init

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the pool process
        try:
            _pool_process_init()
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            sig = ctypes.c_int(0)
            libc.prctl(2, ctypes.byref(sig))  # PR_GET_PDEATHSIG
            os.write(write, str(sig.value).encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        got = os.read(read, 16)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert int(got) == signal.SIGKILL
