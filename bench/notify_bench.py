"""Notification speed: a census of vulnerable hosts in many organisations, written and sent.

    .venv/bin/python bench/notify_bench.py [HOSTS] [ORGANISATIONS]

Builds a DuckDB store with HOSTS (default 5,000) vulnerable Exchange hosts spread over
ORGANISATIONS (default 1,000) constituency entries in four languages, then times, in one
invocation:

- `exwatch notify` dry run (plan, render nl/fr/de/en templates, build and write every .eml),
  against a floor that formats one plain-text message per organisation with str.format and
  the email package (what any notifier must at least do);
- `exwatch notify --send` to a local aiosmtpd server (the test extra; the tests' server
  script), against smtplib handing the same .eml files over one connection.

Prints seconds, messages/s and hosts/s and the ratios to the floors.  Everything stays on
loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab.running import free_port  # noqa: E402
from tests.notify.pki import TestCA  # noqa: E402

from exwatch import assess  # noqa: E402
from exwatch.cli import main  # noqa: E402

BUILDS = ("15.1.2507.6", "15.1.2176.9", "15.2.1118.7", "15.2.1544.4", "15.0.1497.2")
LANGUAGES = ("nl", "fr", "de", "en")
NOW = "2026-11-24T09:00:00Z"


def _record(i: int, ip: str, build: str) -> dict[str, object]:
    found = assess(build).to_json()
    return {
        "schema_version": 1, "scan_id": "bench", "ip": ip, "port": 443, "hostname": None,
        "timestamp": "2026-11-23T08:00:00Z", "duration_ms": 30.0, "status": "success",
        "error": None,
        "exchange": {"build": build, "precision": "su", "product": found["product"],
                     "cu": found["cu"], "su": found["su"], "eol": found["eol"], "known": True,
                     "sources": ["x-owa-version"], "builds_seen": [build]},
        "cves": found["cves"], "tls": {"subject_cn": f"mail.org{i}.example"}, "ntlm": None,
        "headers": {}, "http_status": 200,
    }  # fmt: skip


def build_store(folder: Path, hosts: int, orgs: int) -> tuple[Path, Path]:
    db, lines = folder / "census.duckdb", folder / "census.jsonl"
    const = folder / "constituency.csv"
    rows = ["match,organisation,sector,country,contact,language"]
    for o in range(orgs):
        a, b = 1 + o // 250, o % 250
        rows.append(f"100.{a}.{b}.0/24,Organisatie {o},municipality,BE,it@org{o}.example,"
                    f"{LANGUAGES[o % 4]}")  # fmt: skip
    const.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with lines.open("w", encoding="utf-8") as out:
        for h in range(hosts):
            o = h % orgs
            ip = f"100.{1 + o // 250}.{o % 250}.{1 + h // orgs}"
            out.write(json.dumps(_record(o, ip, BUILDS[h % len(BUILDS)])) + "\n")
    assert main(["ingest", "--db", str(db), str(lines)]) == 0
    assert main(["enrich", "--db", str(db), "--constituency", str(const)]) == 0
    return db, const


def floor_render(folder: Path, orgs: int, hosts: int) -> float:
    """One plain-text message per organisation, str.format and EmailMessage, to files."""
    out = folder / "floor"
    out.mkdir()
    started = time.perf_counter()
    per = max(1, hosts // orgs)
    for o in range(orgs):
        body = "Dear Organisatie {o},\n\n{lines}\n".format(
            o=o, lines="\n".join(f"* 100.1.{o % 250}.{i}: build 15.1.2507.6" for i in range(per))
        )
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"], msg["To"], msg["Subject"] = "c@cert.example", f"it@org{o}.example", "x"
        msg.set_content(body)
        (out / f"{o}.eml").write_bytes(msg.as_bytes())
    return time.perf_counter() - started


def dry_run(db: Path, const: Path, out: Path) -> float:
    started = time.perf_counter()
    code = main(["notify", "--db", str(db), "--constituency", str(const), "-o", str(out),
                 "--now", NOW, "--from", "CERT <cert@cert.example>", "--max-messages", "0",
                 "--max-per-domain", "0", "--json"])  # fmt: skip
    assert code == 0
    return time.perf_counter() - started


def send_runs(folder: Path, db: Path, const: Path, messages: list[Path]) -> tuple[float, float]:
    ca = TestCA(folder)
    issued = ca.issue("smtp", ["localhost", "127.0.0.1"])
    port, spool = free_port(), folder / "spool"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.notify.smtp_server", "--port", str(port), "--spool",
         str(spool), "--cert", str(issued.cert), "--key", str(issued.key)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not (spool / "ready").exists():
            time.sleep(0.02)
        # Floor: the same bytes over one STARTTLS connection with smtplib.
        import ssl

        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(ca.cert)))
            for path in messages:
                smtp.sendmail("cert@cert.example", ["it@org.example"], path.read_bytes())
        floor = time.perf_counter() - started
        started = time.perf_counter()
        code = main(["notify", "--db", str(db), "--constituency", str(const), "-o",
                     str(folder / "sent"), "--now", NOW, "--from", "CERT <cert@cert.example>",
                     "--max-messages", "0", "--max-per-domain", "0", "--send",
                     "--smtp-host", "127.0.0.1", "--smtp-port", str(port),
                     "--smtp-cafile", str(ca.cert), "--json"])  # fmt: skip
        assert code == 0
        ours = time.perf_counter() - started
    finally:
        server.kill()
        server.wait()
    return ours, floor


def main_bench() -> None:
    hosts = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    orgs = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    folder = Path(tempfile.mkdtemp(prefix="exwatch-notify-bench-"))
    os.environ.pop("EXWATCH_SMTP_USER", None)
    os.environ.pop("EXWATCH_SMTP_PASSWORD", None)
    try:
        db, const = build_store(folder, hosts, orgs)
        floor = floor_render(folder, orgs, hosts)
        dry = dry_run(db, const, folder / "review")
        written = sorted((folder / "review" / "messages").glob("*.eml"))
        size = sum(p.stat().st_size for p in written) / max(1, len(written))
        sent, smtp_floor = send_runs(folder, db, const, written)
        print(f"\n{hosts:,} vulnerable hosts in {orgs:,} organisations ({len(written):,} messages,"
              f" {size / 1024:.1f} KiB each on average)")  # fmt: skip
        print(f"  notify dry run      {dry:7.2f} s  {len(written) / dry:8.0f} msg/s"
              f"  {hosts / dry:8.0f} hosts/s")  # fmt: skip
        print(f"  floor (str.format)  {floor:7.2f} s  {orgs / floor:8.0f} msg/s"
              f"  ratio {dry / floor:.1f}x")  # fmt: skip
        print(
            f"  notify --send       {sent:7.2f} s  {len(written) / sent:8.0f} msg/s"
            " (includes planning, rendering and the store)"
        )
        print(f"  smtplib, same bytes {smtp_floor:7.2f} s  {len(written) / smtp_floor:8.0f} msg/s"
              f"  ratio {sent / smtp_floor:.1f}x")  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main_bench()
