"""The census plan without any service: splitting, settings that travel, time limits, URLs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from exwatch.census.broker import TimeLimits, broker_kind, display_url, transport_options
from exwatch.census.plan import CensusSettings, split, task_targets
from exwatch.errors import UsageError
from exwatch.scan.job import ScanJob

SPECS = ["10.1.0.0/26", "10.2.0.5-10.2.0.40", "fd00::/122", "mail.example.org", "owa.example.net"]


def _settings(tmp_path: Path, **kwargs: object) -> CensusSettings:
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("# do not scan\n10.1.0.7\n10.2.0.8/29\n")
    job = ScanJob(specs=list(SPECS), allow_private=True, exclude=[str(blocklist)], seed=11)
    for key, value in kwargs.items():
        setattr(job, key, value)
    return CensusSettings.from_job(job)


def test_split_covers_every_position_once() -> None:
    ranges = split(1000, 300)
    assert ranges == [(0, 300), (300, 600), (600, 900), (900, 1000)]
    assert split(5, 300) == [(0, 5)]
    with pytest.raises(UsageError):
        split(10, 0)


@pytest.mark.parametrize("task_size", [1, 7, 64, 10_000])
def test_tasks_together_are_exactly_the_scan(tmp_path: Path, task_size: int) -> None:
    settings = _settings(tmp_path)
    space = settings.space()
    whole = [(t.ip, t.hostname) for t in space.iter(settings.seed)]
    parts: list[tuple[str | None, str | None]] = []
    for start, stop in split(space.permutation(settings.seed).positions, task_size):
        chunk = [(t.ip, t.hostname) for t in task_targets(space, settings.seed, start, stop)]
        parts.extend(chunk)
    assert parts == whole  # same targets, same order, none twice
    assert len(whole) == space.count
    assert Counter(parts).most_common(1)[0][1] == 1


def test_exclusions_travel_by_content(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (tmp_path / "blocklist.txt").unlink()  # a worker never reads the submitter's files
    again = CensusSettings.from_json(settings.to_json())
    assert again == settings
    ips = {t.ip for t in again.space().iter(again.seed)}
    assert "10.1.0.7" not in ips
    assert not {f"10.2.0.{i}" for i in range(8, 16)} & ips
    assert "10.1.0.6" in ips
    assert again.space().count == settings.space().count


def test_settings_keep_probe_settings_and_user_agent(tmp_path: Path) -> None:
    agent = "exwatch census (CERT example; +https://cert.example/scan)"
    settings = _settings(
        tmp_path, user_agent=agent, tls=False, follow_ups=False, extra_probes=["http-frontend"]
    )
    job = CensusSettings.from_json(settings.to_json()).job()
    assert (job.user_agent, job.tls, job.follow_ups, job.extra_probes) == (
        agent,
        False,
        False,
        ["http-frontend"],
    )


def test_malformed_settings_are_a_clear_error() -> None:
    with pytest.raises(UsageError, match="census settings"):
        CensusSettings.from_json({"specs": ["10.0.0.0/30"]})


def test_time_limits_follow_the_deadline() -> None:
    for deadline in (3, 600, 3600):
        limits = TimeLimits(deadline)
        assert deadline < limits.soft < limits.hard
        # a reserved message may wait a whole task before running one
        assert limits.visibility > 2 * limits.hard
    options = transport_options("redis://127.0.0.1:6379/3", 600)
    assert options["visibility_timeout"] == TimeLimits(600).visibility
    assert "visibility_timeout" not in transport_options("amqp://guest:guest@127.0.0.1//", 600)


def test_broker_urls() -> None:
    assert broker_kind("redis://127.0.0.1:6379/0") == "redis"
    assert broker_kind("rediss://cache.example:6380/1") == "redis"
    assert broker_kind("amqp://guest:guest@127.0.0.1:5672//") == "amqp"
    for bad in ("http://127.0.0.1:5672", "127.0.0.1:6379", "sqs://"):
        with pytest.raises(UsageError, match="Redis"):
            broker_kind(bad)
    assert display_url("amqp://census:s3cret@mq.example:5672/exwatch") == (
        "amqp://census@mq.example:5672/exwatch"
    )
    assert display_url("redis://:s3cret@127.0.0.1:6379/2") == "redis://127.0.0.1:6379/2"
    assert display_url("redis://127.0.0.1:6379/2") == "redis://127.0.0.1:6379/2"


def test_retry_backoff_stays_inside_the_visibility_timeout() -> None:
    from exwatch.census.task import backoff

    assert [backoff(n, 600) for n in range(6)] == [2, 5, 15, 30, 60, 60]
    for deadline in (3, 10, 600):
        assert backoff(10, deadline) <= TimeLimits(deadline).visibility / 4


def test_settings_carry_the_checks_and_the_transport(tmp_path: Path) -> None:
    settings = _settings(tmp_path, checks=["proxylogon", "webshells"], transport="wreq")
    stored = json.loads(json.dumps(settings.to_json()))  # as the store's JSON column holds it
    assert (stored["checks"], stored["transport"]) == (["proxylogon", "webshells"], "wreq")
    again = CensusSettings.from_json(stored)
    assert again == settings
    job = again.job()
    assert (job.checks, job.transport) == (["proxylogon", "webshells"], "wreq")


def test_settings_stored_before_checks_existed_mean_no_checks_on_python() -> None:
    # What `census submit` stored before --check and --transport (no such keys).
    old = {
        "specs": ["10.1.0.0/26"], "port": 443, "seed": 11, "allow_private": True,
        "timeout": 5.0, "concurrency": 500, "tls": True, "follow_ups": True,
        "user_agent": None, "extra_probes": [],
        "exclusions": [{"name": "blocklist.txt", "content": "10.1.0.7\n"}],
    }  # fmt: skip
    settings = CensusSettings.from_json(old)
    assert (settings.checks, settings.transport) == ((), "python")
    job = settings.job()
    assert (job.checks, job.transport) == ([], "python")
    assert "checks" not in job.params()  # a census without checks is what it always was
    assert CensusSettings.from_json(settings.to_json()) == settings


def test_stored_checks_or_transport_this_exwatch_lacks_are_refused() -> None:
    data = CensusSettings(specs=("10.0.0.0/30",), checks=("webshells",)).to_json()
    with pytest.raises(UsageError, match="unknown check"):
        CensusSettings.from_json({**data, "checks": ["webshells", "exploit"]})
    with pytest.raises(UsageError, match="catalogue order"):
        CensusSettings.from_json({**data, "checks": ["webshells", "proxylogon"]})
    with pytest.raises(UsageError, match="unknown transport 'curl'"):
        CensusSettings.from_json({**data, "transport": "curl"})


def test_checks_define_a_census_and_the_transport_does_not() -> None:
    day = "20260101"
    plain = ScanJob(specs=list(SPECS))
    assert ScanJob(specs=list(SPECS), transport="wreq").census_id(day) == plain.census_id(day)
    assert "transport" not in ScanJob(specs=list(SPECS), transport="wreq").params()
    checked = ScanJob(specs=list(SPECS), checks=["webshells"])
    assert checked.census_id(day) != plain.census_id(day)
    assert checked.params()["checks"] == ["webshells"]
