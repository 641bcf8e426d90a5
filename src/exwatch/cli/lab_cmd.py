"""`exwatch lab`: run the simulated server farm until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from exwatch.errors import UsageError
from exwatch.lab import Lab, LabError


@click.command("lab")
@click.option(
    "--hosts",
    type=click.IntRange(1, 60000),
    default=200,
    show_default=True,
    help="Number of simulated addresses.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8443,
    show_default=True,
    help="TCP port every simulated host listens on.",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Same seed, same farm and ground truth."
)
@click.option(
    "--base",
    default="127.16.0.1",
    show_default=True,
    help="First address (must be in 127.0.0.0/8, not 127.0.0.1).",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Working directory for config, certificates and logs (kept). "
    "Default: a temporary one, removed on exit.",
)
@click.option(
    "--ground-truth",
    "gt_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the ground-truth JSON (default: in the working directory).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="nginx worker processes (the Python backend runs one process).",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "nginx", "python"]),
    default="auto",
    show_default=True,
    help="What serves the web hosts: nginx (fast, thousands of hosts), the pure-Python "
    "server (no system package needed; enough for a few hundred hosts), or nginx when "
    "installed.",
)
def lab(
    hosts: int,
    port: int,
    seed: int,
    base: str,
    workdir: Path | None,
    gt_path: Path | None,
    workers: int,
    backend: str,
) -> None:
    """Run a farm of simulated Exchange and other servers on 127.x.y.z.

    Exchange hosts of every product line (2010 SP3 to SE) show their build through a
    realistic mix of headers, logon pages, the eDiscovery manifest and NTLM; other hosts
    are ordinary web servers, closed ports, silent or hostile servers.  The ground-truth
    file says what a perfect scanner reports for each address.  Uses nginx when
    installed, else a slower pure-Python server that answers the same way.
    """
    try:
        farm = Lab(
            hosts=hosts,
            port=port,
            seed=seed,
            workdir=workdir,
            base=base,
            workers=workers,
            ground_truth_path=gt_path,
            backend=backend,
        )
    except LabError as exc:
        raise UsageError(str(exc)) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        with farm:
            counts = farm.ground_truth_document["counts"]
            click.echo(f"lab: {hosts} hosts on port {port}: {', '.join(farm.cidr)}")
            click.echo(f"lab: backend {farm.backend}")
            click.echo("lab: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            click.echo(f"lab: ground truth {farm.ground_truth_path}")
            click.echo("lab: running; Ctrl-C or SIGTERM stops it")
            try:
                while not stop.wait(1.0):
                    if not farm.running():
                        raise LabError("a lab process exited unexpectedly; see its logs")
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo("lab: stopped")
