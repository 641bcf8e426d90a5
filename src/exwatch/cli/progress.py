"""Scan progress for people: a live bar on a terminal, a status line every few seconds otherwise.

On a terminal (tmux, ssh, xterm) rich draws one bar with done/total, rate, Exchange hosts
found, errors and ETA, sized to the terminal's width.  Without one (cron, nohup, a pipe) a
plain line goes to stderr every `every` seconds, as zmap does, so a log shows the scan
moving.  `quiet` silences both.  The total is unknown until the target space is built, so
every column renders before it is known (the original crash: formatting a None total).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from exwatch.scan.runner import Tally

Update = Callable[[Tally, int | None], None]


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN or negative
        return "--:--"
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta(done: int, total: int | None, rate: float) -> float | None:
    """Seconds left at the current rate, or None while it cannot be told."""
    if not total or rate <= 0:
        return None
    return max(0.0, (total - done) / rate)


def status_line(tally: Tally, total: int | None) -> str:
    """One line: done/total (share), rate, found, errors, ETA."""
    done = tally.done + tally.skipped
    share = f" ({100 * done / total:.1f}%)" if total else ""
    return (
        f"scan: {done:,}/{total:,}{share} done" if total is not None else f"scan: {done:,} done"
    ) + (
        f", {tally.rate:,.0f}/s, exchange {tally.exchange:,}, errors {tally.errors:,},"
        f" ETA {_duration(eta(done, total, tally.rate))}"
    )


class _CountColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(f"{int(task.completed):,}/{total}")


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = float(task.fields.get("rate", 0.0))
        total = None if task.total is None else int(task.total)
        return Text(f"ETA {_duration(eta(int(task.completed), total, rate))}")


class _Fields(ProgressColumn):
    def render(self, task: Task) -> Text:
        f = task.fields
        return Text(
            f"{float(f.get('rate', 0.0)):,.0f}/s  exchange {int(f.get('found', 0)):,}"
            f"  errors {int(f.get('errors', 0)):,}"
        )


@contextmanager
def scan_progress(
    console: Console, *, quiet: bool, every: float = 5.0, label: str = "scan"
) -> Iterator[Update | None]:
    """Yields the callback `execute` calls (tally, total) several times a second, or None."""
    if quiet:
        yield None
        return
    if not console.is_terminal:
        last = [time.monotonic()]

        def line(tally: Tally, total: int | None) -> None:
            now = time.monotonic()
            if now - last[0] >= every:
                last[0] = now
                # soft_wrap: one status line stays one line in a log, whatever its length
                console.print(
                    status_line(tally, total), markup=False, highlight=False, soft_wrap=True
                )

        yield line
        return
    # Room for the text columns (about 60 characters with large numbers) at 80 columns.
    bar = max(8, min(40, console.width - 66))
    with Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(bar_width=bar),
        _CountColumn(),
        _Fields(),
        _EtaColumn(),
        console=console,
        refresh_per_second=4,
    ) as progress:
        task = progress.add_task(label, total=None, rate=0.0, found=0, errors=0)

        def update(tally: Tally, total: int | None) -> None:
            progress.update(
                task,
                total=total,
                completed=tally.done + tally.skipped,
                rate=tally.rate,
                found=tally.exchange,
                errors=tally.errors,
            )

        yield update


__all__ = ["eta", "scan_progress", "status_line"]
