"""`exwatch knowledge check FILE...` through the real CLI, on files shaped like the sources
it is meant for (a build-number map, Microsoft's build table as CSV, the Security Update
Guide CSV export, the CISA KEV catalog, plain text)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXWATCH = [sys.executable, "-m", "exwatch"]


def check(*files: Path, as_json: bool = False) -> subprocess.CompletedProcess[str]:
    args = [*EXWATCH, "knowledge", "check", *map(str, files)]
    if as_json:
        args.append("--json")
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_build_map_new_builds_and_a_changed_date(tmp_path: Path) -> None:
    doc = {
        # known, same date: nothing to say
        "15.1.2176.9": {"name": "Exchange Server 2016 CU19 Mar21SU", "release_date": "2021-03-02"},
        # known build, other date
        "15.1.2507.6": {"name": "Exchange Server 2016 CU23", "release_date": "May 1, 2022"},
        # a new SE update and a new 2010 rollup
        "15.2.2562.99": {
            "name": "Exchange Server SE RTM Nov26SU",
            "release_date": "November 10, 2026",
        },
        "14.3.999.0": {"name": "Update Rollup 99 for Exchange Server 2010 SP3", "date": "n/a"},
        "not a build": {"name": "junk"},
    }
    p = check(write(tmp_path, "versions.json", json.dumps(doc)), as_json=True)
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["inputs"][0]["kind"] == "builds"
    assert out["inputs"][0]["skipped"] == 1
    missing = {r["build"]: r for r in out["builds_missing"]}
    se = missing["15.2.2562.99"]
    assert (se["product"], se["cu"], se["su"], se["release_date"]) == (
        "SE",
        "RTM",
        "Nov26SU",
        "2026-11-10",
    )
    assert se["source"] == "TODO-source-id"
    old = missing["14.3.999.0"]
    assert (old["product"], old["cu"], old["su"], old["release_date"]) == (
        "2010",
        "SP3",
        "RU99",
        "",
    )
    assert "not a day" in old["note"]
    assert out["builds_date_differs"] == [
        {"build": "15.1.2507.6", "here": "2022-04-20", "upstream": "2022-05-01", "here_note": ""}
    ]


def test_text_report_prints_csv_rows_to_paste(tmp_path: Path) -> None:
    doc = {"15.2.2562.99": {"name": "Exchange Server SE RTM Nov26SU", "release_date": "2026-11-10"}}
    p = check(write(tmp_path, "v.json", json.dumps(doc)))
    assert p.returncode == 1
    assert "1 builds missing from builds.csv" in p.stdout
    assert "SE,RTM,Nov26SU,15.2.2562.99,2026-11-10,TODO-source-id," in p.stdout


def test_microsoft_build_table_csv_with_nothing_new(tmp_path: Path) -> None:
    table = (
        "Product name,Release date,Build number (short format),Build number (long format)\n"
        'Exchange Server 2019 CU14 Mar24SU,"March 12, 2024",15.2.1544.9,15.02.1544.009\n'
        'Exchange Server 2013 CU23 Mar21SU,"March 2, 2021",15.0.1497.12,15.00.1497.012\n'
    )
    p = check(write(tmp_path, "builds.csv", table))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "read as builds: 2 builds" in p.stdout
    assert "nothing to add" in p.stdout


def test_security_update_guide_export(tmp_path: Path) -> None:
    sug = (
        "Release date,Product,Platform,Impact,Max Severity,Article,Download,Build Number,Details\n"
        "Nov 10 2026,Microsoft Exchange Server Subscription Edition RTM,,Spoofing,Important,"
        "5099999,Security Update,15.02.2562.099,CVE-2026-99991\n"
        "Nov 10 2026,Microsoft Exchange Server 2019 Cumulative Update 15,,Spoofing,Important,"
        "5099999,Security Update,15.02.1748.099,CVE-2026-99991\n"
        "Nov 10 2026,Windows Server 2025,,Remote Code Execution,Critical,5099998,"
        "Security Update,,CVE-2026-99992\n"
        "Mar 2 2021,Microsoft Exchange Server 2019 Cumulative Update 8,,Remote Code Execution,"
        "Critical,5000871,Security Update,15.02.0792.010,CVE-2021-26855\n"
    )
    p = check(write(tmp_path, "sug.csv", sug), as_json=True)
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["inputs"][0]["kind"] == "cves"
    assert [c["cve"] for c in out["cves_missing"]] == ["CVE-2026-99991"]
    assert "Subscription Edition" in out["cves_missing"][0]["detail"]
    # the text form prints a cves.yaml skeleton for it
    text = check(tmp_path / "sug.csv").stdout
    assert "- id: CVE-2026-99991" in text
    assert "fixed_by:" in text


def test_kev_catalog_date_difference(tmp_path: Path) -> None:
    kev = {
        "title": "CISA Catalog of Known Exploited Vulnerabilities",
        "vulnerabilities": [
            {
                "cveID": "CVE-2021-33766",
                "vendorProject": "Microsoft",
                "product": "Exchange Server",
                "vulnerabilityName": "Microsoft Exchange Server Information Disclosure",
                "dateAdded": "2022-01-18",
            },
            {
                "cveID": "CVE-2022-41082",
                "vendorProject": "Microsoft",
                "product": "Exchange Server",
                "vulnerabilityName": "Microsoft Exchange Server Remote Code Execution",
                "dateAdded": "2022-10-03",
            },
            {
                "cveID": "CVE-2024-3400",
                "vendorProject": "Palo Alto Networks",
                "product": "PAN-OS",
                "vulnerabilityName": "PAN-OS Command Injection",
                "dateAdded": "2024-04-12",
            },
        ],
    }
    p = check(write(tmp_path, "kev.json", json.dumps(kev)), as_json=True)
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["inputs"][0] | {"path": ""} == {
        "path": "",
        "kind": "kev",
        "builds": 0,
        "cves": 2,
        "skipped": 1,
    }
    assert out["kev_differs"] == [
        {"cve": "CVE-2022-41082", "here": "2022-09-30", "upstream": "2022-10-03"}
    ]
    assert out["cves_missing"] == []


def test_text_with_cve_ids(tmp_path: Path) -> None:
    text = (
        "Advisory mentions CVE-2021-34473 (catalogued), CVE-2019-1373 (before 2020),\n"
        "CVE-2023-21709 (listed as excluded: fixed by a script, not a build) and CVE-2026-99993.\n"
    )
    p = check(write(tmp_path, "advisory.txt", text), as_json=True)
    assert p.returncode == 1
    assert [c["cve"] for c in json.loads(p.stdout)["cves_missing"]] == ["CVE-2026-99993"]


def test_several_files_at_once_and_nothing_to_add(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "CVE-2021-26855 CVE-2022-41040")
    b = write(tmp_path, "b.json", json.dumps(["15.2.1544.9"]))
    p = check(a, b)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("read as") == 2


def test_unreadable_inputs_are_one_line_errors(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.json", '{"15.2.1544.9": ')
    for path, words in ((bad, "not valid JSON"), (tmp_path / "absent.json", "cannot read")):
        p = check(path)
        assert p.returncode == 2, (path, p.stdout, p.stderr)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert len(lines) == 1, p.stderr
        assert words in lines[0], p.stderr
        assert "Traceback" not in p.stderr
        assert p.stdout == ""


def test_terminal_control_characters_in_input_are_not_echoed(tmp_path: Path) -> None:
    doc = {"15.2.2562.98": {"name": "SE RTM Nov26SU \x1b[2J\x1b]0;owned\x07", "date": "2026-11-10"}}
    p = check(write(tmp_path, "hostile.json", json.dumps(doc)))
    assert p.returncode == 1
    assert "\x1b" not in p.stdout
    assert "\x07" not in p.stdout
