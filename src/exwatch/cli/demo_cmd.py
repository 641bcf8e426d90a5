"""`exwatch demo`: start the lab, scan it, store the results and print a summary.

Everything stays on loopback (127.16.0.0/12 by default); nothing leaves the machine.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from exwatch.cli.progress import scan_progress
from exwatch.cli.scan_cmd import print_summary
from exwatch.onprem import on_prem
from exwatch.scan.job import ScanJob, execute


@click.command("demo")
@click.option(
    "--hosts",
    default=300,
    show_default=True,
    type=click.IntRange(10, 20_000),
    help="Simulated hosts.",
)
@click.option(
    "--dir",
    "workdir",
    default="exwatch-demo",
    show_default=True,
    help="Where results and the store go.",
)
@click.option("--port", default=18443, show_default=True, type=click.IntRange(1024, 65535))
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the lab's host mix.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or status lines.")
def demo(hosts: int, workdir: str, port: int, seed: int, quiet: bool) -> int:
    """Run the lab of simulated servers, scan it like a census would, store and summarise."""
    from exwatch.lab import Lab
    from exwatch.lab.check import score

    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    db = out / "demo.duckdb"
    for stale in (results, db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    console = Console(stderr=True, highlight=False)
    console.print(f"starting a lab of {hosts} simulated servers on loopback ...")
    with Lab(hosts=hosts, port=port, seed=seed, workdir=out / "lab") as lab:
        console.print(
            f"lab up: {', '.join(lab.cidr[:3])}{' ...' if len(lab.cidr) > 3 else ''} port {port}"
        )
        job = ScanJob(
            specs=list(lab.cidr),
            port=port,
            timeout=2.0,
            concurrency=200,
            allow_private=True,  # the lab lives on 127.x.y.z, which a census refuses by default
            output=str(results),
            db=str(db),
        )
        with scan_progress(console, quiet=quiet, label="demo scan") as update:
            summary = execute(job, update)
        truth = lab.ground_truth
    print_summary(console, summary)
    records = [
        json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line
    ]
    stdout = Console(highlight=False)
    products: Counter[str] = Counter()
    vulnerable: Counter[str] = Counter()
    apart: Counter[str] = Counter()  # answered like Exchange, not an organisation's own server
    for r in records:
        if r.get("exchange_online"):
            apart["Exchange Online front ends"] += 1
        elif r.get("suspect"):
            apart["suspect (honeypots, look-alikes)"] += 1
        if not on_prem(r):
            continue
        ex = r["exchange"]
        products[f"{ex.get('product') or 'Exchange (build not read)'}"] += 1
        for cve, verdict in (r.get("cves") or {}).items():
            if verdict == "vulnerable":
                vulnerable[cve] += 1
    table = Table(title="on-prem Exchange servers found", header_style="bold")
    table.add_column("product")
    table.add_column("hosts", justify="right")
    for name, n in products.most_common():
        table.add_row(name, str(n))
    table.add_section()
    table.add_row("on-prem Exchange", str(sum(products.values())))
    stdout.print(table)
    table = Table(title="answered like Exchange, not counted as on-prem", header_style="bold")
    table.add_column("kind")
    table.add_column("hosts", justify="right")
    for name in ("Exchange Online front ends", "suspect (honeypots, look-alikes)"):
        table.add_row(name, str(apart[name]))
    stdout.print(table)
    table = Table(title="hosts with a vulnerable verdict, per CVE", header_style="bold")
    table.add_column("CVE")
    table.add_column("hosts", justify="right")
    for cve, n in sorted(vulnerable.items()):
        table.add_row(cve, str(n))
    stdout.print(table)
    result = score(records, truth)
    for line in result.lines():
        stdout.print(line, markup=False)
    stdout.print(f"results: {results}  store: {db}")
    stdout.print(f"next: exwatch report --db {db} --by version", markup=False)
    return 0 if result.all_right and not summary.interrupted else 1
