"""Which Exchange builds the lab shows: the shipped build table, or a small built-in list.

The lab only needs build numbers and their product line; it reads
`exwatch/knowledge/builds.csv` (columns product,cu,su,build,...) when present so the farm
covers the same builds the knowledge base knows, and falls back to the list below.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources

_FOUR_PART = re.compile(r"\s*(\d{1,2})\.0?(\d)\.0*(\d{1,4})\.0*(\d{1,4})\s*")

# Product line per (major, minor); 15.2 splits into 2019 and SE at build 2562 (SE RTM).
# 2003 and 2007 are not in builds.csv (out of support long before the census era): the
# lab takes their few builds from the built-in list below.
LINES = ("2003", "2007", "2010", "2013", "2016", "2019", "SE")
LEGACY_LINES = ("2003", "2007")
PRODUCT_NAMES = {
    "2003": "Exchange Server 2003",
    "2007": "Exchange Server 2007",
    "2010": "Exchange Server 2010",
    "2013": "Exchange Server 2013",
    "2016": "Exchange Server 2016",
    "2019": "Exchange Server 2019",
    "SE": "Exchange Server SE",
}

# Builds from which X-OWA-Version also appears on the autodiscover 401 ("since July 2021",
# reference note section 1): the July 2021 SU of each line; SE always, 2010 never.
_AUTODISCOVER_HEADER_FROM = {
    "2013": (15, 0, 1497, 23),
    "2016": (15, 1, 2242, 12),
    "2019": (15, 2, 858, 15),
}

# Fallback: a spread of RTM/CU/SU builds per line (from the reference build tables); the
# 2003 and 2007 builds always come from here: 6.5.7638.1 (2003 SP2, products.yaml's
# example), 8.1.375.2 (2007 SP1, nmap's http-enum fingerprints), 8.3.83.6 (2007 SP3,
# Microsoft's build table), 8.3.485.1 (2007 SP3 update, Greenbone's gb_owa_detect example).
_BUILTIN = """
6.5.7638.1 8.1.375.2 8.3.83.6 8.3.485.1
14.3.123.4 14.3.496.0 14.3.509.0 14.3.513.0
15.0.1395.4 15.0.1473.3 15.0.1497.2 15.0.1497.12 15.0.1497.23 15.0.1497.44 15.0.1497.47
15.1.1415.2 15.1.2044.4 15.1.2106.2 15.1.2106.13 15.1.2176.2 15.1.2176.9 15.1.2242.4
15.1.2242.12 15.1.2308.8 15.1.2375.7 15.1.2375.37 15.1.2507.6 15.1.2507.21 15.1.2507.66
15.2.221.12 15.2.659.12 15.2.721.2 15.2.721.13 15.2.792.3 15.2.792.10 15.2.858.5 15.2.858.15
15.2.922.7 15.2.986.5 15.2.986.36 15.2.986.41 15.2.1118.7 15.2.1118.20 15.2.1258.12
15.2.1544.4 15.2.1544.39 15.2.1748.10 15.2.1748.43
15.2.2562.17 15.2.2562.37
"""


@dataclass(frozen=True, order=True, slots=True)
class LabBuild:
    """A 4-part build the lab can install on a simulated server."""

    parts: tuple[int, int, int, int]

    @property
    def full(self) -> str:
        return ".".join(str(p) for p in self.parts)

    @property
    def cu_level(self) -> str:
        """What OWA's static paths show on 2013 and later: the first three parts."""
        return ".".join(str(p) for p in self.parts[:3])

    @property
    def line(self) -> str:
        major, minor, build, _ = self.parts
        if major == 6:
            return "2003"
        if major == 8:
            return "2007"
        if (major, minor) == (14, 3):
            return "2010"
        if (major, minor) == (15, 0):
            return "2013"
        if (major, minor) == (15, 1):
            return "2016"
        return "SE" if build >= 2562 else "2019"

    @property
    def product(self) -> str:
        return PRODUCT_NAMES[self.line]

    @property
    def autodiscover_header(self) -> bool:
        if self.line == "SE":
            return True
        start = _AUTODISCOVER_HEADER_FROM.get(self.line)
        return start is not None and self.parts >= start


def parse_build(text: str) -> LabBuild | None:
    """A 4-part Exchange 2003 SP2, 2007, 2010 SP3 or 2013+ build, or None otherwise."""
    m = _FOUR_PART.fullmatch(text)
    if m is None:
        return None
    a, b, c, d = (int(g) for g in m.groups())
    if (a, b) not in {(6, 5), (8, 1), (8, 3), (14, 3), (15, 0), (15, 1), (15, 2)}:
        return None
    return LabBuild((a, b, c, d))


def _from_csv(text: str) -> list[LabBuild]:
    found = []
    for row in csv.DictReader(text.splitlines()):
        build = parse_build(row.get("build") or "")
        if build is not None:
            found.append(build)
    return found


def _csv_text() -> str:
    try:
        return resources.files("exwatch.knowledge").joinpath("builds.csv").read_text("utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError, UnicodeDecodeError):
        return ""


def load_cu_releases() -> dict[tuple[int, int, int], LabBuild]:
    """The first build of each CU (its row without a security update), by its first three
    parts: the name of the CU's own /ecp/<build>/ folder."""
    out: dict[tuple[int, int, int], LabBuild] = {}
    try:
        rows = list(csv.DictReader(_csv_text().splitlines()))
    except csv.Error:
        return out
    for row in rows:
        if (row.get("su") or "").strip():
            continue
        build = parse_build(row.get("build") or "")
        if build is not None and build.parts[:3] not in out:
            out[build.parts[:3]] = build
    return out


def load_builds() -> dict[str, list[LabBuild]]:
    """Builds per product line, sorted; every line has at least one build."""
    builds: list[LabBuild] = []
    csv_text = _csv_text()
    if csv_text:
        try:
            builds = _from_csv(csv_text)
        except csv.Error:
            builds = []
    by_line: dict[str, set[LabBuild]] = {line: set() for line in LINES}
    for b in builds:
        by_line[b.line].add(b)
    fallback = [b for b in (parse_build(t) for t in _BUILTIN.split()) if b is not None]
    for line in LINES:
        # The table may still be partial while it is being written: fill empty lines only.
        if not by_line[line] or line in LEGACY_LINES:
            by_line[line] = {b for b in fallback if b.line == line}
    return {line: sorted(bs) for line, bs in by_line.items()}
