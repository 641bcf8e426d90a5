"""What a census is made of: its settings (as they travel to the workers) and its tasks.

The settings are everything a worker needs to scan any part of the census the way `exwatch
scan` would: targets, port, seed, probe settings, the opt-in checks, the transport, the
contact user agent, and the exclusion lists *by content*.  They are stored with the census,
so a worker never reads a file of its own machine: an exclusion list edited after submit
changes nothing, and every machine honours the same one.

The census is split along its seeded permutation (scan/permutation.py): task n scans the
cycle positions [n * size, (n + 1) * size).  Positions, not addresses, so every task is a
pseudo-random sample of the whole space (no task hammers one network) and the tasks are
disjoint and together cover every target exactly once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exwatch.checks import catalogue
from exwatch.errors import UsageError
from exwatch.net.transport import DEFAULT_TRANSPORT, TRANSPORTS
from exwatch.scan.exclusions import Exclusions
from exwatch.scan.job import ScanJob
from exwatch.scan.targets import Spec, Target, TargetSpace


@dataclass(frozen=True, slots=True)
class CensusSettings:
    """The scan settings of a census, as stored and as every worker reads them."""

    specs: tuple[str, ...]
    port: int = 443
    seed: int = 0
    allow_private: bool = False
    timeout: float = 5.0
    concurrency: int = 500  # targets in flight per worker process
    tls: bool = True
    follow_ups: bool = True
    user_agent: str | None = None
    extra_probes: tuple[str, ...] = ()
    # (name, content) of each exclusion list, read once at submit
    exclusions: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # Opt-in check ids (catalogue order) and the HTTP client.  Censuses stored before
    # either existed have neither key: no checks, the python transport.
    checks: tuple[str, ...] = ()
    transport: str = DEFAULT_TRANSPORT

    @classmethod
    def from_job(cls, job: ScanJob) -> CensusSettings:
        """The settings of a scan job whose exclusion files are read now."""
        lists: list[tuple[str, str]] = []
        for path in job.exclude:
            try:
                text = Path(path).read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise UsageError(f"cannot read exclusion file {path}: {exc.strerror}") from None
            lists.append((str(path), text))
        return cls(
            specs=tuple(s.text if isinstance(s, Spec) else s for s in job.specs),
            port=job.port,
            seed=job.seed,
            allow_private=job.allow_private,
            timeout=job.timeout,
            concurrency=job.concurrency,
            tls=job.tls,
            follow_ups=job.follow_ups,
            user_agent=job.user_agent,
            extra_probes=tuple(job.extra_probes),
            exclusions=tuple(lists),
            checks=tuple(job.checks),
            transport=job.transport,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["specs"] = list(self.specs)
        data["extra_probes"] = list(self.extra_probes)
        data["exclusions"] = [{"name": n, "content": c} for n, c in self.exclusions]
        data["checks"] = list(self.checks)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CensusSettings:
        try:
            return cls(
                specs=tuple(str(s) for s in data["specs"]),
                port=int(data["port"]),
                seed=int(data["seed"]),
                allow_private=bool(data["allow_private"]),
                timeout=float(data["timeout"]),
                concurrency=int(data["concurrency"]),
                tls=bool(data["tls"]),
                follow_ups=bool(data["follow_ups"]),
                user_agent=data.get("user_agent"),
                extra_probes=tuple(str(p) for p in data.get("extra_probes") or ()),
                exclusions=tuple(
                    (str(e["name"]), str(e["content"])) for e in data.get("exclusions") or ()
                ),
                checks=_known_checks(data.get("checks") or ()),
                transport=_known_transport(data.get("transport") or DEFAULT_TRANSPORT),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"census settings are incomplete or malformed: {exc!r}") from None

    def job(self) -> ScanJob:
        """The equivalent scan job (for the probe settings; exclusions come from `space`)."""
        return ScanJob(
            specs=list(self.specs),
            port=self.port,
            timeout=self.timeout,
            concurrency=self.concurrency,
            allow_private=self.allow_private,
            seed=self.seed,
            output=None,
            db=None,
            tls=self.tls,
            follow_ups=self.follow_ups,
            user_agent=self.user_agent,
            extra_probes=list(self.extra_probes),
            checks=list(self.checks),
            transport=self.transport,
        )

    def space(self) -> TargetSpace:
        """The census's targets, with the stored exclusion lists applied."""
        exclusions = Exclusions.combine(
            Exclusions.parse(content.splitlines(), name) for name, content in self.exclusions
        )
        return TargetSpace.from_specs(
            self.specs, allow_private=self.allow_private, exclusions=exclusions, port=self.port
        )


def _known_checks(values: Any) -> tuple[str, ...]:
    """Stored check ids, as this exwatch knows them: a census from a newer version that
    asks for a check this one lacks is refused (its records would miss what was asked)."""
    ids = tuple(str(v) for v in values)
    if ids and catalogue.parse(ids) != ids:
        raise UsageError(f"census settings: checks {list(ids)} are not in catalogue order")
    return ids


def _known_transport(name: Any) -> str:
    if name not in TRANSPORTS:
        raise UsageError(f"census settings: unknown transport {name!r}")
    return str(name)


def split(positions: int, task_size: int) -> list[tuple[int, int]]:
    """Ranges [start, stop) of cycle positions, task_size each (the last may be shorter)."""
    if task_size < 1:
        raise UsageError("--task-size must be at least 1")
    return [(start, min(start + task_size, positions)) for start in range(0, positions, task_size)]


def task_targets(space: TargetSpace, seed: int, start: int, stop: int) -> Iterator[Target]:
    """The targets of one task: the census's permutation from position `start` up to (not
    including) `stop`, as `exwatch scan` would meet them."""
    if start >= stop:
        return iter(())
    return itertools.takewhile(
        lambda t: t.position < stop, space.iter(seed, (0, 1), from_position=start)
    )


__all__ = ["CensusSettings", "split", "task_targets"]
