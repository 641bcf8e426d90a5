"""Two checked scans of the same addresses and port a week apart (the lab's servers
changed): the scan's summary counts the compromised hosts, and `diff` (CLI and web) shows
what changed in compromise state (newly compromised, no longer showing indicators) and
which hosts are now mitigated rather than patched, on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.lab.running import free_port
from tests.seams.lab import Checked, run
from tests.web.server import serving

pytestmark = pytest.mark.slow


def _state(r: dict[str, Any] | None) -> dict[str, bool]:
    if r is None:
        return {"x": False, "v": False, "m": False, "c": False, "judged": False, "seen": False}
    x = bool(r["exchange"]) and not r.get("exchange_online") and not r.get("suspect")
    verdicts = (r.get("cves") or {}).values()
    judged = ((r.get("checks") or {}).get("compromise") or {}).get("state")
    return {
        "x": x,
        "v": x and "vulnerable" in verdicts,
        "m": "mitigated" in verdicts,
        "c": judged == "compromised",
        "judged": judged in ("compromised", "clean-at-known-paths"),
        "seen": True,
    }


def _expected(a: Checked, b: Checked) -> dict[str, set[str]]:
    old = {r["ip"]: _state(r) for r in a.records}
    new = {r["ip"]: _state(r) for r in b.records}
    out: dict[str, set[str]] = {"newly": set(), "cleaned": set(), "mitigated": set()}
    for ip in old.keys() | new.keys():
        pa, pb = old.get(ip, _state(None)), new.get(ip, _state(None))
        if pb["c"] and not pa["c"]:
            out["newly"].add(ip)
        if pa["c"] and pb["judged"] and not pb["c"]:
            out["cleaned"].add(ip)
        if pa["v"] and pb["x"] and not pb["v"] and pb["m"]:
            out["mitigated"].add(ip)
    return out


def _checked_count(c: Checked) -> int:
    return sum(1 for r in c.records if (r.get("checks") or {}).get("ran"))


def test_summary_and_diff_show_compromise_changes(
    checked: Checked, rescanned: Checked, backend: str, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    for scan in (checked, rescanned):
        line = f"{len(scan.compromised())} compromised of {_checked_count(scan)} checked"
        assert line in scan.summary
        # The same facts for scripts (--summary-json), counted from the records.
        facts = json.loads(scan.summary_file.read_text("utf-8"))
        assert (facts["state"], facts["exit_code"], facts["scan_id"]) == (
            "finished", 0, scan.scan_id,
        )  # fmt: skip
        assert facts["addresses"] == len(scan.records) == sum(facts["statuses"].values())
        assert facts["checked"] == _checked_count(scan)
        assert facts["compromised"] == len(scan.compromised())
        assert facts["exchange"] == sum(1 for r in scan.records if r.get("exchange"))
        assert facts["output"] == str(scan.out)
    want = _expected(checked, rescanned)
    assert want["newly"]
    assert want["cleaned"]
    db = checked.store(backend, tmp_path, request)
    for args in (("ingest", "--db", db, str(rescanned.out)), ("enrich", "--db", db)):
        done = run(*args)
        assert done.returncode == 0, done.stderr
    a, b = checked.scan_id, rescanned.scan_id

    done = run("diff", a, b, "--db", db, "--by", "total", "--format", "json")
    assert done.returncode == 0, done.stderr
    (total,) = json.loads(done.stdout)
    assert total["newly_compromised"] == len(want["newly"])
    assert total["no_longer_compromised"] == len(want["cleaned"])
    assert total["mitigated"] == len(want["mitigated"])
    table = run("diff", a, b, "--db", db, "--by", "total", columns=250).stdout
    assert "newly compromised" in table

    done = run("diff", a, b, "--db", db, "--hosts", "--format", "json")
    assert done.returncode == 0, done.stderr
    hosts = json.loads(done.stdout)
    changed = {h["ip"]: h for h in hosts}
    assert {ip for ip, h in changed.items() if h["compromise"] == "newly compromised"} == want[
        "newly"
    ]
    assert {
        ip for ip, h in changed.items() if h["compromise"] == "no longer showing indicators"
    } == want["cleaned"]
    assert {ip for ip, h in changed.items() if h["after"] == "mitigated"} == want["mitigated"]

    with serving(db) as site:
        page = site.get(f"/api/diff?a={a}&b={b}&by=total&per_page=1000").json()
        (group,) = page["groups"]
        assert group["newly_compromised"] == len(want["newly"])
        assert group["no_longer_compromised"] == len(want["cleaned"])
        web_hosts = {h["ip"]: h for h in page["hosts"]["rows"]}
        assert {ip for ip, h in web_hosts.items() if h["compromise"] == "newly compromised"} == (
            want["newly"]
        )


def test_a_host_found_mitigated_is_not_counted_as_patched(
    checked: Checked, rescanned: Checked, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The lab rarely turns a vulnerable host into a mitigated-only one between two seeds:
    a later sighting of one host says so (its build-decided verdicts patched, the ProxyLogon
    and ProxyShell paths read as mitigated), loaded like any other scan."""
    from exwatch.report.compromise import behaviour_cves

    judged = set(behaviour_cves())
    before = next(
        r for r in checked.records
        if (r.get("checks") or {}).get("ran")
        and any(v == "vulnerable" for c, v in r["cves"].items() if c in judged)
    )  # fmt: skip
    later = json.loads(json.dumps(before))
    later["scan_id"] = "later-mitigated"
    later["timestamp"] = later["timestamp"].replace("2026-", "2027-", 1)
    later["cves"] = {
        c: ("mitigated" if c in judged else "patched") if v == "vulnerable" else v
        for c, v in before["cves"].items()
    }
    lines = tmp_path / "later.jsonl"
    lines.write_text(json.dumps(later) + "\n", encoding="utf-8")
    db = checked.store("duckdb", tmp_path, request)
    for args in (("ingest", "--db", db, str(lines)), ("enrich", "--db", db)):
        done = run(*args)
        assert done.returncode == 0, done.stderr
    done = run("diff", checked.scan_id, "later-mitigated", "--db", db, "--by", "total",
               "--format", "json")  # fmt: skip
    (total,) = json.loads(done.stdout)
    assert (total["mitigated"], total["patched"], total["still_vulnerable"]) == (1, 0, 0)
    done = run("diff", checked.scan_id, "later-mitigated", "--db", db, "--hosts",
               "--format", "json")  # fmt: skip
    (host,) = [h for h in json.loads(done.stdout) if h["ip"] == before["ip"]]
    assert (host["before"], host["after"]) == ("vulnerable", "mitigated")


def test_summary_json_needs_a_folder_that_exists(tmp_path: Path) -> None:
    """Refused before anything is scanned, not after the scan's work."""
    done = run(
        "scan", "127.0.0.1", "--allow-private", "--no-db", "-o", str(tmp_path / "r.jsonl"),
        "--summary-json", str(tmp_path / "missing" / "summary.json"),
    )  # fmt: skip
    assert done.returncode == 2
    assert "--summary-json" in done.stderr
    assert "no such folder" in done.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_a_summary_that_cannot_be_written_is_said_and_exits_1(tmp_path: Path) -> None:
    """The results are written; the summary a script waits for is not (a full disk)."""
    out = tmp_path / "r.jsonl"
    done = run(
        "scan", "127.0.0.1", "--port", str(free_port()), "--allow-private", "--no-db",
        "-o", str(out), "--summary-json", "/dev/full",
    )  # fmt: skip
    assert done.returncode == 1
    assert "could not write the summary to /dev/full" in done.stderr
    assert "Traceback" not in done.stderr
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == [
        "connection-refused"
    ]
