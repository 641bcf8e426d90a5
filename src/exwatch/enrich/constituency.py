"""The constituency file a CERT keeps: which networks, ASNs and domains belong to whom.

CSV with a header row.  Columns: `match` (a CIDR or single address, `AS1234`, or a domain suffix
such as `gemeente.nl` / `.example.be`), `organisation`, `sector` (from the sector vocabulary),
and optionally `country`, `contact`, `language`, `org_id`, `subsector`, `notes`.  Lines whose
first cell starts with `#` are comments.  Any bad value is a DataError naming file and line: a
half-loaded constituency would silently misattribute.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from exwatch.enrich.orgs import normalise_hostname, suffixes_of
from exwatch.enrich.sectors import Sector, sector_vocabulary
from exwatch.errors import DataError

MatchKind = Literal["cidr", "asn", "domain"]
REQUIRED_COLUMNS = ("match", "organisation", "sector")
OPTIONAL_COLUMNS = ("country", "contact", "language", "org_id", "subsector", "notes")

_ASN = re.compile(r"^AS(\d+)$", re.IGNORECASE)
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True, slots=True)
class ConstituencyEntry:
    line: int
    match: str  # as normalised: "192.0.2.0/24", "AS2611", "gemeente.nl"
    kind: MatchKind
    organisation: str
    sector: str
    country: str | None = None
    contact: str | None = None
    language: str | None = None
    org_id: str | None = None
    subsector: str | None = None


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Constituency:
    """Loaded entries with longest-prefix / longest-suffix lookup."""

    def __init__(self, entries: list[ConstituencyEntry], source: str) -> None:
        self.entries = entries
        self.source = source
        # version -> prefix length -> network address as int -> entry
        self._nets: dict[int, dict[int, dict[int, ConstituencyEntry]]] = {4: {}, 6: {}}
        self._asns: dict[int, ConstituencyEntry] = {}
        self._domains: dict[str, ConstituencyEntry] = {}
        self._domain_cache: dict[str, ConstituencyEntry | None] = {}
        for entry in entries:
            if entry.kind == "cidr":
                net = ipaddress.ip_network(entry.match)
                by_len = self._nets[net.version].setdefault(net.prefixlen, {})
                by_len[int(net.network_address)] = entry
            elif entry.kind == "asn":
                self._asns[int(entry.match[2:])] = entry
            else:
                self._domains[entry.match] = entry
        self._lengths = {v: sorted(t, reverse=True) for v, t in self._nets.items()}

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def load(cls, path: Path | str, sectors: Mapping[str, Sector] | None = None) -> Constituency:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read constituency file: {exc.strerror}") from exc
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
        digest = hashlib.sha256(raw).hexdigest()[:12]
        entries = parse_constituency(text, str(path), sectors)
        return cls(entries, f"{path.name} ({len(entries)} entries, sha256 {digest})")

    def by_ip(self, ip: str) -> ConstituencyEntry | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        value, bits = int(addr), addr.max_prefixlen
        tables = self._nets[addr.version]
        for length in self._lengths[addr.version]:
            mask = ((1 << length) - 1) << (bits - length)
            found = tables[length].get(value & mask)
            if found is not None:
                return found
        return None

    def by_asn(self, asn: int | None) -> ConstituencyEntry | None:
        return None if asn is None else self._asns.get(asn)

    def by_domain(self, name: str) -> ConstituencyEntry | None:
        """The entry with the longest domain suffix covering the normalised name `name`."""
        if not self._domains:
            return None
        try:
            return self._domain_cache[name]
        except KeyError:
            pass
        found = None
        for suffix in suffixes_of(name):
            found = self._domains.get(suffix)
            if found is not None:
                break
        if len(self._domain_cache) > 200_000:
            # Bounded memory on huge scans; names repeat mostly within a batch.
            self._domain_cache.clear()
        self._domain_cache[name] = found
        return found


def parse_constituency(
    text: str, source: str, sectors: Mapping[str, Sector] | None = None
) -> list[ConstituencyEntry]:
    vocabulary = sector_vocabulary() if sectors is None else sectors
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    entries: list[ConstituencyEntry] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = _header(row, source, line)
                continue
            if len(row) > len(header):
                raise DataError(f"{source}:{line}: {len(row)} fields, header has {len(header)}")
            cells = {
                name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)
            }
            entry = _entry(cells, source, line, vocabulary)
            if entry.match in seen:
                raise DataError(
                    f"{source}:{line}: {entry.match} already listed on line {seen[entry.match]}"
                )
            seen[entry.match] = line
            entries.append(entry)
    except csv.Error as exc:
        raise DataError(f"{source}:{reader.line_num}: malformed CSV: {exc}") from exc
    if header is None:
        raise DataError(f"{source}: empty constituency file (no header row)")
    return entries


def _header(row: list[str], source: str, line: int) -> list[str]:
    names = [cell.strip().lower() for cell in row]
    unknown = [n for n in names if n not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        allowed = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        raise DataError(f"{source}:{line}: unknown column(s) {', '.join(unknown)}; use {allowed}")
    missing = [n for n in REQUIRED_COLUMNS if n not in names]
    if missing:
        raise DataError(f"{source}:{line}: missing column(s) {', '.join(missing)}")
    if len(set(names)) != len(names):
        raise DataError(f"{source}:{line}: a column is named twice")
    return names


def _entry(
    cells: dict[str, str], source: str, line: int, sectors: Mapping[str, Sector]
) -> ConstituencyEntry:
    where = f"{source}:{line}"
    kind, match = parse_match(cells["match"], where)
    organisation = cells["organisation"]
    if not organisation:
        raise DataError(f"{where}: organisation is empty")
    sector = cells["sector"].lower()
    if sector not in sectors:
        raise DataError(
            f"{where}: sector {cells['sector']!r} is not in the vocabulary "
            f"({', '.join(sorted(sectors))})"
        )
    country = cells.get("country", "")
    if country and not _COUNTRY.match(country):
        raise DataError(f"{where}: country {country!r} is not an ISO 3166 alpha-2 code")
    language = cells.get("language", "")
    if language and not _LANGUAGE.match(language):
        raise DataError(f"{where}: language {language!r} is not a language tag such as nl or fr-BE")
    return ConstituencyEntry(
        line=line,
        match=match,
        kind=kind,
        organisation=organisation,
        sector=sector,
        country=country.upper() or None,
        contact=cells.get("contact") or None,
        language=language or None,
        org_id=cells.get("org_id") or None,
        subsector=cells.get("subsector") or None,
    )


def parse_match(raw: str, where: str) -> tuple[MatchKind, str]:
    """Classify and normalise one `match` cell."""
    value = raw.strip()
    if not value:
        raise DataError(f"{where}: match is empty")
    asn = _ASN.match(value)
    if asn:
        number = int(asn.group(1))
        if number >= 2**32:
            raise DataError(f"{where}: {value} is beyond the 32-bit AS number range")
        return "asn", f"AS{number}"
    if any(ch.isdigit() for ch in value) and (":" in value or "/" in value or _looks_ipv4(value)):
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise DataError(f"{where}: {value!r} is not a valid CIDR: {exc}") from exc
        return "cidr", str(net)
    name = normalise_hostname(value.lstrip("*").lstrip("."))
    if name is None:
        raise DataError(f"{where}: {value!r} is neither a CIDR, an AS number (AS1234) nor a domain")
    return "domain", name


def _looks_ipv4(value: str) -> bool:
    return bool(re.fullmatch(r"[\d.]+", value))


__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "Constituency",
    "ConstituencyEntry",
    "MatchKind",
    "parse_constituency",
    "parse_match",
]
