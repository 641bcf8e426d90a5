"""Value types shared across exwatch: statuses, verdicts, builds and assessments.

Everything here is a frozen dataclass or an enum with kebab-case values, so results
serialise to JSON the same way everywhere (`to_json()`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Outcome of one attempt against one target (closed set, zgrab2-style kebab case)."""

    SUCCESS = "success"
    CONNECTION_REFUSED = "connection-refused"
    CONNECTION_TIMEOUT = "connection-timeout"
    CONNECTION_RESET = "connection-reset"
    CONNECTION_CLOSED = "connection-closed"
    TLS_ERROR = "tls-error"
    IO_TIMEOUT = "io-timeout"
    PROTOCOL_ERROR = "protocol-error"
    BLOCKLISTED = "blocklisted"
    INVALID_TARGET = "invalid-target"
    UNKNOWN_ERROR = "unknown-error"


class Verdict(StrEnum):
    """What the build says about one CVE."""

    VULNERABLE = "vulnerable"
    PATCHED = "patched"
    UNDETERMINED = "undetermined"
    NOT_AFFECTED = "not-affected"


class Precision(StrEnum):
    """How much of the build was visible: the security update (4 parts) or only the CU (3)."""

    SU = "su"
    CU = "cu"


_BUILD_RE = re.compile(r"\s*(\d{1,3})\.(\d{1,3})\.(\d{1,5})(?:\.(\d{1,5}))?\s*")


@dataclass(frozen=True, order=True, slots=True)
class Build:
    """An Exchange build number: major.minor.build[.revision].

    The revision is None when only three parts were visible (OWA's static paths on
    2013 and later show the CU level only).
    """

    major: int
    minor: int
    build: int
    revision: int | None = None

    @classmethod
    def parse(cls, text: str) -> Build:
        """Parse '15.1.2176.9', '15.01.2176.009' or '15.1.2176'; raise BuildParseError."""
        from exwatch.errors import BuildParseError  # errors imports model: avoid a cycle

        m = _BUILD_RE.fullmatch(text)
        if m is None:
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise BuildParseError(
                f"not an Exchange build: {shown!r} (expected 3 or 4 numbers, e.g. 15.1.2176.9)"
            )
        major, minor, build, rev = m.groups()
        return cls(int(major), int(minor), int(build), None if rev is None else int(rev))

    @property
    def cu_key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.build)

    @property
    def precision(self) -> Precision:
        return Precision.CU if self.revision is None else Precision.SU

    def as_tuple(self) -> tuple[int, int, int, int]:
        """Comparable form; a missing revision sorts before every revision of its CU."""
        return (self.major, self.minor, self.build, -1 if self.revision is None else self.revision)

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.build}"
        return base if self.revision is None else f"{base}.{self.revision}"


@dataclass(frozen=True, slots=True)
class CveResult:
    verdict: Verdict
    reason: str


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the knowledge base says about one build: product, CU/SU, support and CVE verdicts."""

    build: Build
    product_id: str | None
    product: str | None
    cu: str | None
    su: str | None
    known: bool
    eol: bool | None
    end_of_support: date | None
    release_date: date | None
    placement: str
    cves: dict[str, CveResult] = field(default_factory=dict)

    @property
    def precision(self) -> Precision:
        return self.build.precision

    @property
    def vulnerable(self) -> list[str]:
        return [c for c, r in self.cves.items() if r.verdict is Verdict.VULNERABLE]

    def to_json(self) -> dict[str, Any]:
        """The `exwatch assess --json` object; other commands embed it."""
        return {
            "build": str(self.build),
            "product": self.product,
            "cu": self.cu,
            "su": self.su,
            "precision": self.precision.value,
            "eol": self.eol,
            "end_of_support": None
            if self.end_of_support is None
            else self.end_of_support.isoformat(),
            "release_date": None if self.release_date is None else self.release_date.isoformat(),
            "known": self.known,
            "placement": self.placement,
            "cves": {c: r.verdict.value for c, r in self.cves.items()},
            "reasons": {c: r.reason for c, r in self.cves.items()},
        }
