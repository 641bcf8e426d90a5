"""`exwatch demo` shows Exchange Online front ends and suspects apart from on-prem
Exchange; `exwatch selftest` renders every notify template around hostile server
strings, and catches a template that breaks or lets markup through."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from exwatch.notify.render import shipped_template
from tests.lab.running import free_port
from tests.seams.lab import run

pytestmark = pytest.mark.slow


def test_demo_counts_online_and_suspect_apart(tmp_path: Path) -> None:
    where = tmp_path / "demo"
    done = run("demo", "--hosts", "120", "--dir", str(where), "--port", str(free_port()), "-q",
               timeout=600, columns=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (where / "results.jsonl").read_text().splitlines()]
    online = sum(1 for r in records if r.get("exchange_online"))
    suspect = sum(1 for r in records if r.get("suspect"))
    on_prem = sum(
        1
        for r in records
        if r["exchange"] and not r.get("exchange_online") and not r.get("suspect")
    )
    assert online > 0
    assert suspect > 0

    def count(label: str) -> int:
        (line,) = [
            line for line in done.stdout.splitlines() if label in line and re.search(r"\d", line)
        ]
        return int(re.findall(r"\d+", line)[-1])

    assert count("on-prem Exchange ") == on_prem
    assert count("Exchange Online front ends") == online
    assert count("suspect (honeypots, look-alikes)") == suspect


def test_selftest_renders_the_notify_templates(tmp_path: Path) -> None:
    done = run("selftest")
    assert done.returncode == 0, done.stdout
    assert re.search(r"^ok   notify templates: 16 examples, 0 problems$", done.stdout, re.M)
    # An override that lets a server's host name through as markup is caught ...
    unsafe = tmp_path / "unsafe"
    (unsafe / "en").mkdir(parents=True)
    for part in ("subject.txt.j2", "body.txt.j2"):
        (unsafe / "en" / part).write_text(shipped_template("en", part), encoding="utf-8")
    html = shipped_template("en", "body.html.j2")
    assert "{{ h.hostname }}" in html
    (unsafe / "en" / "body.html.j2").write_text(
        html.replace("{{ h.hostname }}", "{{ h.hostname|safe }}"), encoding="utf-8"
    )
    done = run("selftest", "--templates", str(unsafe))
    assert done.returncode == 1
    assert f"FAIL notify templates ({unsafe})" in done.stdout
    assert "en/initial: server markup in the HTML part" in done.stdout
    # ... and so is one that does not render.
    broken = tmp_path / "broken"
    (broken / "nl").mkdir(parents=True)
    for part in ("subject.txt.j2", "body.html.j2"):
        (broken / "nl" / part).write_text(shipped_template("nl", part), encoding="utf-8")
    (broken / "nl" / "body.txt.j2").write_text("{{ h.no_such_field }}\n", encoding="utf-8")
    done = run("selftest", "--templates", str(broken))
    assert done.returncode == 1
    assert "nl/initial: does not render" in done.stdout
