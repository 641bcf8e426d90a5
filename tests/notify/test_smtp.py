"""Sending through a real SMTP server (aiosmtpd in its own process, TLS on loopback with a
test CA): STARTTLS and implicit TLS, the login from the environment or a file, refusals,
and a sender killed (SIGKILL) in the middle of a run: the rerun loses nothing and sends
nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exwatch.store import open_store
from tests.notify.pki import TestCA
from tests.notify.records import OLD, OLDER, exchange, store_with
from tests.notify.runs import SENDER, notify
from tests.notify.smtpd import ROOT, smtp_server

NOW = "2026-03-02T09:00:00Z"
LOGIN = ("cert-sender", "s3cret pass:word")


def _census() -> dict[str, list[dict[str, object]]]:
    when = "2026-03-01"
    return {
        "census": [
            exchange("census", "193.190.10.1", when, OLD),
            exchange("census", "193.190.20.1", when, OLDER),
            exchange("census", "193.190.30.1", when, OLD),
            exchange("census", "193.190.40.1", when, OLDER),
        ]
    }


@pytest.fixture
def census(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Path]:
    return store_with(tmp_path, "duckdb", request, _census())


@pytest.fixture
def no_login_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXWATCH_SMTP_USER", raising=False)
    monkeypatch.delenv("EXWATCH_SMTP_PASSWORD", raising=False)


def _states(db: str) -> dict[str, int]:
    with open_store(db, create=False) as store:
        rows = store.query("SELECT state, count(*) FROM notifications GROUP BY state")
    return {str(s): int(n) for s, n in rows}


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_send_with_a_login_from_the_environment(
    security: str,
    census: tuple[str, Path],
    tmp_path: Path,
    test_ca: TestCA,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, const = census
    monkeypatch.setenv("EXWATCH_SMTP_USER", LOGIN[0])
    monkeypatch.setenv("EXWATCH_SMTP_PASSWORD", LOGIN[1])
    with smtp_server(tmp_path, test_ca, security=security, login=LOGIN) as server:
        code, index = notify(db, tmp_path / "out", NOW, "--send", *server.args(),
                             constituency=const)  # fmt: skip
        received = server.received()
    assert code == 0
    assert [m["state"] for m in index["messages"]] == ["sent"] * 4
    assert len(received) == 4
    by_to = {r.rcpt_tos[0]: r for r in received}
    assert set(by_to) == {
        "ict@rode.example", "csirt@bruxelles.example", "it@eupen.example", "soc@port.example",
    }  # fmt: skip
    for item in received:
        assert item.mail_from == "cert@cert.example"
        assert item.message["From"].addresses[0].addr_spec == "cert@cert.example"
    # What the server holds is what the store recorded, byte for byte.
    with open_store(db, create=False) as store:
        stored = {
            str(m): str(t) for m, t in store.query("SELECT message_id, message FROM notifications")
        }
        replies = [str(r[0]) for r in store.query("SELECT smtp_reply FROM notifications")]
    for item in received:
        assert item.raw.replace(b"\r\n", b"\n") == str(stored[item.message["Message-ID"]]).encode(
            "ascii"
        ).replace(b"\r\n", b"\n")
    assert all(r.startswith("250 2.0.0 queued as") for r in replies)
    assert _states(db) == {"sent": 4}


def test_send_with_a_login_file_and_refusals_of_loose_files(
    census: tuple[str, Path], tmp_path: Path, test_ca: TestCA, no_login_env: None
) -> None:
    db, const = census
    login = tmp_path / "smtp-login"
    login.write_text(f"{LOGIN[0]}\n{LOGIN[1]}\n", encoding="utf-8")
    login.chmod(0o644)
    with smtp_server(tmp_path, test_ca, login=LOGIN) as server:
        args = ["--send", *server.args(), "--smtp-login-file", str(login)]
        code, _ = notify(db, tmp_path / "loose", NOW, *args, constituency=const)
        assert code == 2  # readable by others: refused before anything happens
        assert server.received() == []
        login.chmod(0o600)
        code, _ = notify(db, tmp_path / "ok", NOW, *args, constituency=const)
        assert code == 0
        assert len(server.received()) == 4


def test_a_refused_login_leaves_nothing_half_done(
    census: tuple[str, Path], tmp_path: Path, test_ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, const = census
    monkeypatch.setenv("EXWATCH_SMTP_USER", LOGIN[0])
    monkeypatch.setenv("EXWATCH_SMTP_PASSWORD", "wrong")
    with smtp_server(tmp_path, test_ca, login=LOGIN) as server:
        code, index = notify(db, tmp_path / "bad", NOW, "--send", *server.args(),
                             constituency=const)  # fmt: skip
        assert code == 1
        assert "refused the login" in str(index["stopped"])
        assert server.received() == []
        assert _states(db) == {}  # nothing recorded: the next run plans everything again
        monkeypatch.setenv("EXWATCH_SMTP_PASSWORD", LOGIN[1])
        code, _ = notify(db, tmp_path / "good", NOW, "--send", *server.args(),
                         constituency=const)  # fmt: skip
        assert code == 0
        assert len(server.received()) == 4


def test_an_untrusted_certificate_stops_before_anything_is_sent(
    census: tuple[str, Path], tmp_path: Path, test_ca: TestCA, no_login_env: None
) -> None:
    db, const = census
    with smtp_server(tmp_path, test_ca) as server:
        args = [a for a in server.args() if a not in ("--smtp-cafile", str(server.cafile))]
        code, index = notify(db, tmp_path / "out", NOW, "--send", *args, constituency=const)
        assert code == 1
        assert "TLS failed" in str(index["stopped"])
        assert server.received() == []


def test_plain_smtp_only_to_a_local_relay_and_never_with_a_login(
    census: tuple[str, Path], tmp_path: Path, test_ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, const = census
    code, _ = notify(db, tmp_path / "a", NOW, "--send", "--smtp-host", "mail.cert.example",
                     "--smtp-security", "none", constituency=const)  # fmt: skip
    assert code == 2
    with smtp_server(tmp_path, test_ca, security="none") as server:
        monkeypatch.setenv("EXWATCH_SMTP_USER", "u")
        monkeypatch.setenv("EXWATCH_SMTP_PASSWORD", "p")
        code, _ = notify(db, tmp_path / "b", NOW, "--send", *server.args(), constituency=const)
        assert code == 2
        monkeypatch.delenv("EXWATCH_SMTP_USER")
        monkeypatch.delenv("EXWATCH_SMTP_PASSWORD")
        code, _ = notify(db, tmp_path / "c", NOW, "--send", *server.args(), constituency=const)
        assert code == 0
        assert len(server.received()) == 4


def test_the_placeholder_sender_is_refused_for_sending(
    census: tuple[str, Path], tmp_path: Path
) -> None:
    db, _ = census
    from exwatch.cli import main

    code = main(["notify", "--db", db, "--send", "-o", str(tmp_path / "o"), "--now", NOW])
    assert code == 2


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_refused_recipients_fail_and_temporary_refusals_wait(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    test_ca: TestCA,
    no_login_env: None,
) -> None:
    db, const = store_with(tmp_path, kind, request, _census())
    with smtp_server(tmp_path, test_ca, reject_rcpt="eupen", tempfail_rcpt="port") as server:
        code, index = notify(db, tmp_path / "one", NOW, "--send", *server.args(),
                             constituency=const)  # fmt: skip
        assert code == 1
        states = {m["to"]: (m["state"], m["detail"]) for m in index["messages"]}
        assert states["it@eupen.example"][0] == "failed"
        assert "550" in states["it@eupen.example"][1]
        assert states["soc@port.example"][0] == "pending"
        assert "451" in states["soc@port.example"][1]
        assert len(server.received()) == 2
    assert _states(db) == {"sent": 2, "failed": 1, "pending": 1}
    # The next run (the server takes everyone now) sends the pending message as it was, and
    # plans the failed one's findings again as a new message.
    with smtp_server(tmp_path, test_ca) as server:
        code, index = notify(db, tmp_path / "two", NOW, "--send", *server.args(),
                             constituency=const)  # fmt: skip
        assert code == 0
        assert index["counts"]["in_flight"] == 0
        received = server.received()
    assert sorted(r.rcpt_tos[0] for r in received) == ["it@eupen.example", "soc@port.example"]
    assert _states(db) == {"sent": 4, "failed": 1}


def _sender(db: str, out: Path, const: Path, server_args: list[str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "exwatch", "notify", "--db", db, "-o", str(out), "--now", NOW,
        "--from", SENDER, "--constituency", str(const), "--send", *server_args,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXWATCH_SMTP_")}
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


@pytest.mark.parametrize("stall_at", [1, 3])
def test_a_sender_killed_mid_run_loses_nothing_and_sends_nothing_twice(
    stall_at: int, census: tuple[str, Path], tmp_path: Path, test_ca: TestCA
) -> None:
    db, const = census
    with smtp_server(tmp_path, test_ca, stall_at=stall_at) as server:
        proc = _sender(db, tmp_path / "killed", const, server.args())
        deadline = time.monotonic() + 60
        while not (server.spool / "stalled").exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, "the sender never reached the stalled message"
            time.sleep(0.02)
        # The server holds message number `stall_at` without answering: kill -9 the sender.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        if proc.stderr:
            proc.stderr.close()
        spool = server.spool
        before = [r.message["Message-ID"] for r in server.received()]
    assert len(before) == stall_at - 1
    with open_store(db, create=False) as store:
        pending = {
            str(m)
            for (m,) in store.query("SELECT message_id FROM notifications WHERE state = 'pending'")
        }
    assert len(pending) == 4 - len(before)  # recorded before they were handed over
    # A new server on the same spool (a restart); the rerun sends what was not accepted.
    with smtp_server(tmp_path, test_ca, spool=spool) as server:
        code, index = notify(db, tmp_path / "rerun", NOW, "--send", *server.args(),
                             constituency=const)  # fmt: skip
        after = [r.message["Message-ID"] for r in server.received()]
    assert code == 0
    assert len(after) == 4
    assert len(set(after)) == 4  # nothing twice
    assert set(after) - set(before) == pending  # the same Message-IDs, resent as recorded
    assert index["messages"] == []  # nothing new was planned: all findings were in flight
    assert _states(db) == {"sent": 4}
    # And a third run finds nothing to do.
    code, index = notify(db, tmp_path / "third", NOW, constituency=const)
    assert code == 0
    assert index["messages"] == []
