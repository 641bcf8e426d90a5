"""Credentials: hashed at rest, required whenever configured, and always off loopback.

The off-loopback case binds inside a network namespace this test creates (its own dummy
interface and address, reachable only from inside it); it skips, saying why, where
namespaces cannot be made.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exwatch.cli import main
from exwatch.web.auth import Credentials, hash_secret
from tests.netns.namespace import NetnsUnavailable, fresh_netns
from tests.web.server import serving

PASSWORD = "correct horse battery staple"
TOKEN = "tok-8f3e2c1d9b7a6e5f"


def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _credentials_text() -> str:
    return f"analyst:{hash_secret(PASSWORD)}\ntoken:{hash_secret(TOKEN)}\n"


def test_hashes_are_salted_and_verify() -> None:
    one, two = hash_secret(PASSWORD), hash_secret(PASSWORD)
    assert one != two
    assert PASSWORD not in one
    creds = Credentials.parse(f"analyst:{one}\n", "test")
    assert creds.check(_basic("analyst", PASSWORD)["Authorization"]) == "analyst"
    assert creds.check(_basic("analyst", PASSWORD + "x")["Authorization"]) is None
    assert creds.check(_basic("nobody", PASSWORD)["Authorization"]) is None
    assert creds.check("Basic !!!not-base64") is None
    assert creds.check(None) is None


def test_clear_text_secrets_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "creds"
    path.write_text(f"analyst:{PASSWORD}\n")
    assert main(["serve", "--db", str(tmp_path / "x.duckdb"), "--credentials", str(path)]) == 2


def test_credentials_are_required_when_configured(web_db: str) -> None:
    creds = Credentials.parse(_credentials_text(), "test")
    with serving(web_db, credentials=creds) as site:
        refused = site.get("/api/scans")
        assert refused.status == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert refused.headers["content-security-policy"]
        assert site.get("/api/scans", headers=_basic("analyst", "wrong")).status == 401
        assert site.get("/api/scans", headers=_basic("analyst", PASSWORD)).status == 200
        assert site.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
        assert site.get("/", headers={"Authorization": "Bearer guess"}).status == 401
        assert site.get("/static/app.js").status == 401


def test_a_rebinding_host_name_is_refused(web_db: str) -> None:
    with serving(web_db, hosts=["127.0.0.1", "localhost"]) as site:
        assert site.get("/api/scans").status == 200
        assert site.get("/api/scans", headers={"Host": "attacker.example"}).status == 421


def test_hash_secret_prints_a_line_never_the_secret() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exwatch", "serve", "--hash-secret", "--name", "analyst"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("analyst:scrypt$")
    assert PASSWORD not in done.stdout
    creds = Credentials.parse(line, "stdout")
    assert creds.check(_basic("analyst", PASSWORD)["Authorization"]) == "analyst"


def _ns(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", name, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize("web_db", ["duckdb"], indirect=True)  # one backend: it tests the bind
def test_off_loopback_needs_credentials_in_a_namespace(web_db: str, tmp_path: Path) -> None:
    assert web_db.endswith(".duckdb")
    address = "10.231.7.1"  # exists only inside the namespace this test creates
    try:
        with fresh_netns("exwatch-web") as name:
            # A non-loopback address on the namespace's own lo: reachable only inside it.
            made = _ns(name, "ip", "addr", "add", f"{address}/32", "dev", "lo")
            if made.returncode != 0:
                pytest.skip(f"cannot add an address in the namespace: {made.stderr}")
            serve = [sys.executable, "-m", "exwatch", "serve", "--db", web_db, "--host", address,
                     "--port", "8000", "--no-access-log"]  # fmt: skip
            refused = _ns(name, *serve)
            assert refused.returncode == 2
            assert "--credentials" in refused.stderr
            creds = tmp_path / "creds"
            creds.write_text(_credentials_text())
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(
                ["ip", "netns", "exec", name, *serve, "--credentials", str(creds)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            try:
                probe = (
                    "import sys, urllib.request, urllib.error, base64\n"
                    f"url = 'http://{address}:8000/api/scans'\n"
                    "def get(h):\n"
                    "    try:\n"
                    "        req = urllib.request.Request(url, headers=h)\n"
                    "        return urllib.request.urlopen(req, timeout=5).status\n"
                    "    except urllib.error.HTTPError as e:\n"
                    "        return e.code\n"
                    "    except OSError:\n"
                    "        return 0\n"
                    f"auth = 'Basic ' + base64.b64encode(b'analyst:{PASSWORD}').decode()\n"
                    "print(get({}), get({'Authorization': auth}))\n"
                )
                statuses = "0 0"
                for _ in range(100):
                    statuses = _ns(name, sys.executable, "-c", probe).stdout.strip()
                    if not statuses.startswith("0"):
                        break
                    time.sleep(0.3)
                assert statuses == "401 200", (statuses, proc.stderr)
            finally:
                proc.terminate()
                proc.communicate(timeout=30)
    except NetnsUnavailable as exc:
        pytest.skip(f"no private network namespace here: {exc}")
