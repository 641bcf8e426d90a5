"""A census with the opt-in checks (`census submit --check`) and `--transport`, on real
workers, brokers and PostgreSQL, against a lab whose nginx logs every request it serves.

The census must find what `exwatch scan --check all-safe` finds on the same lab (each
host's records alike, the ground truth's compromise and behaviour states), check every host
once (counted in nginx's log: the known shell paths each host was asked for), store what
`report`, `export --compromised` and `census status` read, and never check a host twice
when a task runs again.  The workers use the transport the census names.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exwatch.census.budget import RateBudget
from exwatch.census.plan import CensusSettings, split, task_targets
from exwatch.census.run import run_task
from exwatch.checks import catalogue, indicators
from exwatch.lab import Lab
from exwatch.lab.check import score
from exwatch.scan.job import ScanJob, execute
from exwatch.store import open_store
from exwatch.store.census import Census, CensusBook, Claim
from tests.census.cluster import exwatch, rows, wait_until_ended
from tests.census.conftest import Cluster
from tests.lab.running import NO_NGINX, free_port

pytestmark = [pytest.mark.slow, NO_NGINX]

REDIS_ONLY = pytest.mark.parametrize("cluster", ["redis"], indirect=True)
ALL = list(catalogue.check_ids())
TIMEOUT = 2.0
KNOWN_PATHS = frozenset(p.path for p in indicators.load().paths)
_MOMENT = ("timestamp", "duration_ms", "scan_id")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """This module's lab (it replaces the census lab): nginx logging every request."""
    with Lab(
        hosts=100,
        port=free_port(),
        seed=31,
        base="127.27.0.1",
        backend="nginx",
        access_log=True,
        workdir=tmp_path_factory.mktemp("lab"),
    ) as lab:
        yield lab


def _forget_requests(lab: Lab) -> None:
    lab.access_log_path.write_text("", "utf-8")  # nginx appends: the log starts again here


def _shell_path_requests(lab: Lab) -> Counter[str]:
    """Per lab address, the known web-shell paths it was asked for since the log was last
    emptied (only the `webshells` check asks for them: one per path and check run)."""
    per: Counter[str] = Counter()
    for line in lab.access_log_path.read_text("utf-8").splitlines():
        address, _, request = line.split(" ", 2)
        words = request.strip('"').split(" ")
        if len(words) > 1 and words[1] in KNOWN_PATHS:
            per[address] += 1
    return per


def _asked(record: dict[str, Any]) -> int:
    checks = record.get("checks") or {}
    return int((checks.get("compromise") or {}).get("paths_asked") or 0) if checks["ran"] else 0


def _comparable(record: dict[str, Any], truth: dict[str, Any] | None) -> dict[str, Any]:
    kept = {k: v for k, v in copy.deepcopy(record).items() if k not in _MOMENT}
    if truth is not None and truth.get("profile") == "load-balancer":
        # Whichever backend nginx picks answers: the ground truth accepts any.
        return {"status": kept["status"], "exchange": bool(kept["exchange"])}
    compromise = (kept.get("checks") or {}).get("compromise") or {}
    for baseline in compromise.get("baselines") or []:
        baseline.pop("path")  # a random name, new for every run of the check
    # The lab's servers give every response a request-id of its own, which evidence quotes.
    text = re.sub(r"request-id: [0-9a-f]+", "request-id: *", json.dumps(kept, sort_keys=True))
    comparable: dict[str, Any] = json.loads(text)
    return comparable


def _differences(a: Any, b: Any, at: str = "") -> list[str]:
    """Where two records differ (for the failure message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in sorted(set(a) | set(b))
            for d in _differences(a.get(k), b.get(k), f"{at}.{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{at}[{i}]")
        ]
    return [] if a == b else [f"{at}: {a!r} != {b!r}"]


def _exactly_once(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keys = [(r["ip"], r["port"]) for r in records]
    assert len(keys) == len(set(keys)), "a host was stored twice"
    return {r["ip"]: r for r in records}


def _compromised(records: dict[str, dict[str, Any]]) -> set[str]:
    return {
        ip
        for ip, r in records.items()
        if ((r.get("checks") or {}).get("compromise") or {}).get("state") == "compromised"
    }


@pytest.fixture(scope="module")
def reference(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, dict[str, Any]], Counter[str]]:
    """`exwatch scan --check all-safe` of the lab in one process: its records (right by the
    ground truth) and the shell paths each host was asked for."""
    out = tmp_path_factory.mktemp("reference") / "scan.jsonl"
    _forget_requests(lab)
    summary = execute(
        ScanJob(
            specs=list(lab.cidr),
            port=lab.port,
            timeout=TIMEOUT,
            allow_private=True,
            output=str(out),
            db=None,
            workers=1,
            checks=ALL,
        )
    )
    assert not summary.interrupted
    records = _exactly_once([json.loads(line) for line in out.read_text().splitlines()])
    result = score(records.values(), lab.ground_truth)
    assert result.all_right, "\n".join(result.lines())
    assert summary.tally.checked == sum(1 for t in lab.ground_truth.values() if "checks" in t)
    return records, _shell_path_requests(lab)


def _submit(cluster: Cluster, lab: Lab, *extra: str) -> str:
    scan_id = f"test-{uuid.uuid4().hex[:10]}"
    exwatch(
        "census", "submit", *lab.cidr, "--port", str(lab.port), "--allow-private",
        "--timeout", str(TIMEOUT), "--broker", cluster.broker, "--db", cluster.db,
        "--queue", cluster.queue, "--task-deadline", "20", "--scan-id", scan_id, *extra,
    )  # fmt: skip
    return scan_id


def _report(db: str, scan_id: str) -> list[dict[str, Any]]:
    """`report --view compromise --by host` (what the checks' host_checks rows give)."""
    done = exwatch(
        "report", "--db", db, "--scan", scan_id, "--view", "compromise", "--by", "host",
        "--format", "json",
    )  # fmt: skip
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def test_census_with_checks_finds_what_scan_finds_checking_each_host_once(
    reference: tuple[dict[str, dict[str, Any]], Counter[str]],
    cluster: Cluster,
    lab: Lab,
    tmp_path: Path,
) -> None:
    expected, scan_requests = reference
    _forget_requests(lab)
    scan_id = _submit(cluster, lab, "--check", "all-safe", "--task-size", "20")
    st = wait_until_ended(cluster.db, scan_id, workers=cluster.workers)
    assert st["status"] == "finished", st
    assert st["tasks_by_status"]["done"] == st["tasks"] > 2
    census_requests = _shell_path_requests(lab)
    records = _exactly_once(rows(cluster.db, scan_id))
    assert set(records) == set(expected)
    result = score(records.values(), lab.ground_truth)
    assert result.all_right, "\n".join(result.lines())
    for ip, ref in expected.items():
        truth = lab.ground_truth.get(ip)
        mine, theirs = _comparable(records[ip], truth), _comparable(ref, truth)
        assert mine == theirs, (ip, _differences(mine, theirs))
    # Each host was asked for the shell paths once, exactly as the scan asked them.
    checked = {ip for ip, r in records.items() if r["checks"]["ran"]}
    assert len(checked) == sum(1 for t in lab.ground_truth.values() if "checks" in t)
    for ip, record in records.items():
        assert census_requests[ip] == _asked(record) == scan_requests[ip], ip
    assert set(census_requests) == checked
    # What reads the store sees the census's compromises, as those of a scan.
    compromised = _compromised(records)
    assert compromised == _compromised(expected)
    assert compromised
    assert st["checks"] == ALL
    assert (st["checked"], st["compromised"]) == (len(checked), len(compromised))
    shown = exwatch("census", "status", scan_id, "--db", cluster.db).stdout
    assert f"{len(compromised)} compromised of {len(checked)} checked" in shown
    assert "transport" not in shown  # the default client goes unsaid
    hosts = _report(cluster.db, scan_id)
    assert {h["ip"] for h in hosts} == compromised
    ref_db = tmp_path / "reference.duckdb"
    ref_file = tmp_path / "reference.jsonl"
    ref_file.write_text("".join(json.dumps(r) + "\n" for r in expected.values()))
    exwatch("ingest", str(ref_file), "--db", str(ref_db))
    ref_scan = next(iter(expected.values()))["scan_id"]
    volatile = ("scan_id", "ts", "timestamp")
    assert [{k: v for k, v in h.items() if k not in volatile} for h in hosts] == [
        {k: v for k, v in h.items() if k not in volatile} for h in _report(str(ref_db), ref_scan)
    ]
    export = exwatch(
        "export", "--db", cluster.db, "--scan", scan_id, "--compromised", "--format", "jsonl"
    )
    assert {json.loads(line)["ip"] for line in export.stdout.splitlines()} == compromised


@REDIS_ONLY
def test_workers_use_the_transport_the_census_names(cluster: Cluster, lab: Lab) -> None:
    scan_id = _submit(cluster, lab, "--transport", "wreq", "--task-size", "40")
    st = wait_until_ended(cluster.db, scan_id, workers=cluster.workers)
    assert st["status"] == "finished", st
    assert st["transport"] == "wreq"
    assert (st["checks"], st["checked"], st["compromised"]) == ([], None, None)
    records = _exactly_once(rows(cluster.db, scan_id))
    result = score(records.values(), lab.ground_truth)
    assert result.all_right, "\n".join(result.lines())
    # wreq answered: a certificate, but no TLS version (Python's ssl reports one).
    answered = [r for r in records.values() if r["status"] == "success" and r["tls"]]
    assert answered
    assert all(r["tls"]["version"] is None and r["tls"]["sha256"] for r in answered)
    shown = exwatch("census", "status", scan_id, "--db", cluster.db).stdout
    assert "compromised" not in shown  # no checks asked: no such count
    assert "transport wreq" in shown


def _census(db: str, settings: CensusSettings, scan_id: str) -> int:
    """Record a one-task census of `settings` in the store; its number of positions."""
    space = settings.space()
    positions = space.permutation(settings.seed).positions
    census = Census(
        scan_id=scan_id, queue="q", broker="redis://127.0.0.1/1", settings=settings.to_json(),
        status="queued", targets=space.count, tasks=1, task_size=positions, deadline=120,
        max_attempts=3, rate=None,
    )  # fmt: skip
    with open_store(db) as store, store.transaction():
        CensusBook(store).create(census, split(positions, positions), positions)
        store.start_scan({}, scan_id=scan_id, targets=space.count)
    return positions


def test_a_task_run_again_checks_no_host_twice(
    lab: Lab, census_db: str, reference: tuple[dict[str, dict[str, Any]], Counter[str]]
) -> None:
    """The store refuses the record of the last host the checks run on, so the first
    attempt fails after storing the hosts before it; the second attempt skips the stored
    hosts and reuses what the first one's checks found on the refused host: over both
    attempts, every host is asked for the shell paths once."""
    scan_id = f"test-{uuid.uuid4().hex[:10]}"
    settings = CensusSettings(
        specs=tuple(lab.cidr), port=lab.port, allow_private=True, timeout=TIMEOUT,
        checks=tuple(ALL),
    )  # fmt: skip
    positions = _census(census_db, settings, scan_id)
    space = settings.space()
    order = [str(t.ip) for t in task_targets(space, settings.seed, 0, positions)]
    victim = [ip for ip in order if "checks" in lab.ground_truth[ip]][-1]
    constraint = f"refuse_{uuid.uuid4().hex[:8]}"
    _forget_requests(lab)
    with open_store(census_db) as store, open_store(census_db) as side_store:
        book, side = CensusBook(store), CensusBook(side_store)
        store.execute(
            f"ALTER TABLE results ADD CONSTRAINT {constraint}"
            f" CHECK (scan_id <> '{scan_id}' OR ip <> '{victim}')"
        )
        try:
            first = book.claim(scan_id, 0, "test:1")
            assert isinstance(first, Claim)
            # Paced, so the hosts before the refused one are stored in earlier batches.
            budget = RateBudget(25, lambda n, gap: side.lease(scan_id, n, gap))
            failed = run_task(
                book, scan_id, 0, first, settings, space, deadline=120, budget=budget, side=side
            )
        finally:
            store.execute(f"ALTER TABLE results DROP CONSTRAINT {constraint}")
        assert failed.state == "failed", failed
        assert constraint in (failed.error or "")
        stored_first = {r["ip"] for r in rows(census_db, scan_id)}
        assert victim not in stored_first
        assert any(r["checks"]["ran"] for r in rows(census_db, scan_id))
        claims = {
            str(ip): (kept, bool(stored))
            for ip, kept, stored in store.query(
                "SELECT ip, result, stored FROM census_checks WHERE scan_id = ?", [scan_id]
            )
        }
        kept, stored = claims[victim]
        assert kept is not None
        assert not stored
        # Hosts whose checks the failure cut short keep their claim without a result.
        cut_short = {ip for ip, (result, _) in claims.items() if result is None}

        assert book.fail(scan_id, 0, first.attempt, failed.error or "") == "retry"
        second = book.claim(scan_id, 0, "test:2")
        assert isinstance(second, Claim)
        assert second.resumed
        done = run_task(book, scan_id, 0, second, settings, space, deadline=120, side=side)
        assert (done.state, done.skipped) == ("done", len(stored_first)), done
    records = _exactly_once(rows(census_db, scan_id))
    assert set(records) == set(lab.ground_truth)
    requests = _shell_path_requests(lab)
    for ip, record in records.items():
        if ip in cut_short:
            assert record["checks"]["skipped"] == "already checked in this scan"
            assert requests[ip] <= len(KNOWN_PATHS), ip
        else:
            assert requests[ip] == _asked(record), ip
    # The refused host's record carries what the first attempt's checks found, unchanged.
    assert (json.loads(kept) if isinstance(kept, str) else kept) == records[victim]["checks"]
    expected, _ = reference
    truth = lab.ground_truth[victim]
    assert _comparable(records[victim], truth) == _comparable(expected[victim], truth)
    right = score(
        [r for ip, r in records.items() if ip not in cut_short],
        {ip: t for ip, t in lab.ground_truth.items() if ip not in cut_short},
    )
    assert right.all_right, "\n".join(right.lines())
    with open_store(census_db) as store:
        checked, compromised = CensusBook(store).checked(scan_id)
    assert checked == sum(1 for r in records.values() if r["checks"]["ran"])
    assert compromised == len(_compromised(records))
