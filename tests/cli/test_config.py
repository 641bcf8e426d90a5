"""The config file (exwatch.toml / --config), the User-Agent placeholder warning, several ports
and host:port / URL targets, through the real CLI (issue 10, "also expected")."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exwatch.errors import UsageError
from exwatch.scan.targets import Endpoint, TargetSpace, parse_endpoint, parse_ports
from tests.cli.terminal import silent_listener
from tests.lab.running import free_port

EXWATCH = [sys.executable, "-m", "exwatch"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXWATCH, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_config_in_the_working_directory_gives_defaults(tmp_path: Path) -> None:
    (tmp_path / "ex.txt").write_text("127.0.0.2\n", encoding="utf-8")
    (tmp_path / "exwatch.toml").write_text(
        'db = "census.duckdb"\nexclude = ["ex.txt"]\n'
        'user-agent = "CERT-T census (https://cert.test/scan)"\n'
        '[scan]\nport = "9"\nallow-private = true\n',
        encoding="utf-8",
    )
    p = run("scan", "127.0.0.1-127.0.0.3", "-o", "o.jsonl", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    got = records(tmp_path / "o.jsonl")
    assert sorted(str(r["ip"]) for r in got) == ["127.0.0.1", "127.0.0.3"]  # exclusion applied
    assert {r["port"] for r in got} == {9}
    assert (tmp_path / "census.duckdb").is_file()  # the top-level db
    assert "placeholder" not in p.stderr  # a real contact was configured


def test_top_level_keys_reach_every_command_with_that_option(tmp_path: Path) -> None:
    import click

    import exwatch.cli.config as config
    from exwatch.cli import COMMANDS, app

    ctx = click.Context(app)
    commands = {name: app.get_command(ctx, name) for name in COMMANDS}
    keys = {k for c in commands.values() if c for k in config.option_keys(c)}
    data = {"db": "c.duckdb", "geo-db": "g.mmdb", "constituency": "c.csv", "report": {"limit": 5}}
    path = tmp_path / "exwatch.toml"
    report = commands["report"]
    scan = commands["scan"]
    assert report is not None
    assert scan is not None
    got = config.default_map(data, "report", report, keys, path)
    assert got["db_path"] == str(tmp_path / "c.duckdb")  # report's --db is param db_path
    assert got["geo_db"] == str(tmp_path / "g.mmdb")
    assert got["limit"] == 5
    assert config.default_map(data, "scan", scan, keys, path) == {"db": str(tmp_path / "c.duckdb")}


def test_ports_as_a_list_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "exwatch.toml").write_text("[scan]\nport = [9, 10]\n", encoding="utf-8")
    p = run("scan", "127.0.0.1", "--allow-private", "--no-db", "-o", "o.jsonl", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(int(str(r["port"])) for r in records(tmp_path / "o.jsonl")) == [9, 10]


def test_command_line_wins_over_the_config(tmp_path: Path) -> None:
    (tmp_path / "exwatch.toml").write_text('[scan]\nport = "9"\n', encoding="utf-8")
    p = run(
        "scan", "127.0.0.1", "--port", "10", "--allow-private", "--no-db", "-o", "o.jsonl", "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert [r["port"] for r in records(tmp_path / "o.jsonl")] == [10]


@pytest.mark.parametrize("place", ["before", "after"])
def test_config_option_before_or_after_the_command(tmp_path: Path, place: str) -> None:
    conf = tmp_path / "etc" / "x.toml"
    conf.parent.mkdir()
    (conf.parent / "ex.txt").write_text("127.0.0.0/8\n", encoding="utf-8")
    conf.write_text('exclude = ["ex.txt"]\n', encoding="utf-8")  # relative to the file
    args = ["scan", "127.0.0.1", "--allow-private", "--no-db", "-o", "o.jsonl", "-q"]
    args = ["--config", str(conf), *args] if place == "before" else [*args, "--config", str(conf)]
    p = run(*args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert records(tmp_path / "o.jsonl") == []  # excluded by the file's list


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("dbx = 1\n", "'dbx'"),
        ("[scan]\nbogus = 1\n", "'bogus' in [scan]"),
        ("[scna]\nrate = 1\n", "[scna]"),
        ("db = \n", "config file"),
    ],
)
def test_unknown_keys_and_bad_files_are_errors_naming_the_key(
    tmp_path: Path, text: str, named: str
) -> None:
    (tmp_path / "exwatch.toml").write_text(text, encoding="utf-8")
    p = run("scan", "127.0.0.1", "--allow-private", "--no-db", "-o", "o.jsonl", cwd=tmp_path)
    assert p.returncode == 2
    assert named in p.stderr
    assert "Traceback" not in p.stderr


def test_placeholder_user_agent_is_warned_about(tmp_path: Path) -> None:
    base = ["scan", "127.0.0.1", "--port", "9", "--allow-private", "--no-db", "-q"]
    p = run(*base, "-o", "a.jsonl", cwd=tmp_path)
    assert "placeholder" in p.stderr
    p = run(*base, "-o", "b.jsonl", "--user-agent", "CERT-T (https://cert.test)", cwd=tmp_path)
    assert "placeholder" not in p.stderr


def test_ports_and_endpoints_parse() -> None:
    assert parse_ports("443, 444,8443,443") == (443, 444, 8443)
    for bad in ("0", "443,x", "70000", ""):
        with pytest.raises(UsageError):
            parse_ports(bad)
    assert parse_endpoint("8.8.8.8:8443") == Endpoint("8.8.8.8", None, 8443)
    assert parse_endpoint("[2a00::1]:444") == Endpoint("2a00::1", None, 444)
    assert parse_endpoint("https://Mail.Example.org/owa/") == Endpoint(
        None, "mail.example.org", 443
    )
    assert parse_endpoint("https://[2a00::1]:8443/") == Endpoint("2a00::1", None, 8443)
    assert parse_endpoint("2a00::1") is None
    assert parse_endpoint("mail.example.org") is None
    for bad in ("http://x.org/", "https://u:p@x.org/", "x.org:99999", "[2a00::1]x"):
        with pytest.raises(UsageError):
            parse_endpoint(bad)
    assert parse_endpoint("http://x.org/", tls=False) == Endpoint(None, "x.org", 80)


def test_endpoints_obey_exclusions_and_reserved_ranges() -> None:
    with pytest.raises(UsageError, match="reserved"):
        TargetSpace.from_specs(["10.0.0.1:443"])
    with pytest.raises(UsageError, match="reserved"):
        TargetSpace.from_specs(["[::ffff:10.0.0.1]:443"])
    from exwatch.scan.exclusions import Exclusions

    space = TargetSpace.from_specs(
        ["https://8.8.8.8:444/", "8.8.4.4:443"], exclusions=Exclusions.parse(["8.8.8.0/24"])
    )
    assert [(t.ip, t.port) for t in space.iter(1)] == [("8.8.4.4", 443)]
    assert space.excluded_count == 1


def test_several_ports_make_address_port_pairs() -> None:
    space = TargetSpace.from_specs(["8.8.8.0/30", "example.org"], ports=[443, 8443])
    pairs = [(t.ip or t.hostname, t.port) for t in space.iter(3)]
    assert len(pairs) == len(set(pairs)) == space.count == 10
    assert {p for _, p in pairs} == {443, 8443}
    shards = [list(space.iter(3, (i, 3))) for i in range(3)]
    assert sum(len(s) for s in shards) == 10


def test_multi_port_scan_resumes_per_address_and_port(tmp_path: Path) -> None:
    out, db = tmp_path / "o.jsonl", tmp_path / "s.duckdb"
    closed = free_port()
    with silent_listener() as silent:
        cmd = [
            *EXWATCH, "scan", "127.0.0.0/29", "--port", f"{closed},{silent}", "--allow-private",
            "--plain-http", "--timeout", "5", "--concurrency", "2", "--db", str(db),
            "-o", str(out), "-q", "--user-agent", "test (https://cert.test)",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
    p = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    keys = [(r["ip"], r["port"]) for r in records(out)]
    assert len(keys) == len(set(keys)) == 16
    assert {port for _, port in keys} == {closed, silent}
