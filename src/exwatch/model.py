"""Value types shared across exwatch: statuses, verdicts, builds and assessments.

`Status` lives in `exwatch.status` (so the error tree can use it without importing this
module) and is re-exported here.

Everything here is a frozen dataclass or an enum with kebab-case values, so results
serialise to JSON the same way everywhere (`to_json()`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from exwatch.errors import BuildParseError
from exwatch.status import Status


class Verdict(StrEnum):
    """What the build says about one CVE.

    MITIGATED is reserved for an opt-in behavioural check that sees a mitigation in place;
    the build-based assessment never sets it.
    """

    VULNERABLE = "vulnerable"
    PATCHED = "patched"
    UNDETERMINED = "undetermined"
    NOT_AFFECTED = "not-affected"
    MITIGATED = "mitigated"


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
    """A verdict, a sentence saying why, and the compact basis a notification can cite.

    `basis` names the build compared with and the source id of the CVE-to-update mapping,
    e.g. "fixed in 15.1.2176.12 (Apr21SU) [cvelist]"; ids resolve through sources.yaml.
    """

    verdict: Verdict
    reason: str
    basis: str = ""


@dataclass(frozen=True, slots=True)
class PatchLag:
    """How far a build is behind the updates released for its CU and its product line.

    With `exact` false only the CU was visible (or the build is not in the table): the
    counts are upper bounds, as the server may carry any update of its CU.
    """

    exact: bool
    build_date: date  # release date of the build (of its CU when only the CU is visible)
    cu_latest: str  # newest known build of the host's CU
    cu_latest_su: str | None
    sus_behind: int  # updates of the host's CU newer than its build
    cu_receives_sus: bool  # the CU got the line's newest update and the line is supported
    latest: str  # newest known build of the product line
    latest_su: str | None
    latest_cu: str
    days_behind: int  # newest update of the line minus the build's release date
    days_behind_any: int  # newest update of any Exchange line minus the build's release date
    cus_behind: int | None  # CUs between the host's and the newest (None: line out of support)

    def to_json(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            "build_date": self.build_date.isoformat(),
            "cu_latest": self.cu_latest,
            "cu_latest_su": self.cu_latest_su,
            "sus_behind": self.sus_behind,
            "cu_receives_sus": self.cu_receives_sus,
            "latest": self.latest,
            "latest_su": self.latest_su,
            "latest_cu": self.latest_cu,
            "days_behind": self.days_behind,
            "days_behind_any": self.days_behind_any,
            "cus_behind": self.cus_behind,
        }


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
    patch_lag: PatchLag | None = None

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
            # _value_ is what Enum.value returns, without its descriptor (132 CVEs a build)
            "cves": {c: r.verdict._value_ for c, r in self.cves.items()},
            "reasons": {c: r.reason for c, r in self.cves.items()},
            "basis": {c: r.basis for c, r in self.cves.items()},
            "patch_lag": None if self.patch_lag is None else self.patch_lag.to_json(),
        }


__all__ = [
    "Assessment",
    "Build",
    "CveResult",
    "PatchLag",
    "Precision",
    "Status",
    "Verdict",
]
