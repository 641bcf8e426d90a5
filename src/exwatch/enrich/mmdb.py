"""MaxMind-format (.mmdb) databases a user has: GeoLite2/GeoIP2, DB-IP Lite, IPinfo Lite.

What a file holds is read from `metadata().database_type`, never guessed from its name; records are
parsed for the field layouts of all three vendors (MaxMind/DB-IP `country.iso_code`,
`autonomous_system_number`; IPinfo `country_code`, `asn` "AS2611", `as_name`, `as_domain`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import maxminddb

from exwatch.errors import DataError

# GeoLite2's EULA asks for current data; older than this earns a warning.
STALE_AFTER_DAYS = 60

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_ASN_TEXT = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AsnInfo:
    asn: int | None
    as_name: str | None = None
    as_domain: str | None = None


def capabilities(database_type: str) -> tuple[bool, bool]:
    """(provides country, provides ASN) for a metadata database_type, from vendor naming."""
    kind = database_type.lower()
    if "ipinfo" in kind:
        # IPinfo Lite and its country_asn file carry both in every record.
        return True, True
    if "enterprise" in kind:
        return True, True
    asn = "asn" in kind or kind.endswith("-isp") or kind.endswith(" isp")
    country = "country" in kind or "city" in kind or "location" in kind
    return country, asn


@dataclass(slots=True)
class MmdbDatabase:
    path: Path
    database_type: str
    build_date: date
    provides_country: bool
    provides_asn: bool
    _reader: Any = field(repr=False)

    @classmethod
    def open(cls, path: Path | str) -> MmdbDatabase:
        path = Path(path)
        try:
            reader = maxminddb.open_database(str(path))
        except FileNotFoundError as exc:
            raise DataError(f"{path}: no such database file") from exc
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise DataError(f"{path}: not a readable MaxMind-format database: {exc}") from exc
        meta = reader.metadata()
        database_type = str(meta.database_type)
        country, asn = capabilities(database_type)
        if not (country or asn):
            reader.close()
            raise DataError(
                f"{path}: database type {database_type!r} holds neither country nor ASN data"
            )
        built = datetime.fromtimestamp(int(meta.build_epoch), tz=UTC).date()
        return cls(path, database_type, built, country, asn, reader)

    @property
    def source(self) -> str:
        return f"{self.database_type} ({self.path.name}, built {self.build_date.isoformat()})"

    def age_days(self, today: date | None = None) -> int:
        return ((today or datetime.now(UTC).date()) - self.build_date).days

    def stale_warning(self, today: date | None = None) -> str | None:
        age = self.age_days(today)
        if age > STALE_AFTER_DAYS:
            return f"{self.path}: {self.database_type} data is {age} days old; use a current copy"
        return None

    def record(self, ip: str) -> Mapping[str, Any] | None:
        try:
            found = self._reader.get(ip)
        except (ValueError, TypeError):
            # Not an address, or IPv6 asked of an IPv4-only database.
            return None
        return found if isinstance(found, Mapping) else None

    def country(self, ip: str) -> str | None:
        rec = self.record(ip)
        return country_of(rec) if rec is not None else None

    def asn(self, ip: str) -> AsnInfo | None:
        rec = self.record(ip)
        return asn_of(rec) if rec is not None else None

    def close(self) -> None:
        self._reader.close()


def country_of(rec: Mapping[str, Any]) -> str | None:
    for candidate in (
        _iso(rec.get("country")),
        rec.get("country_code"),
        _iso(rec.get("registered_country")),
    ):
        if isinstance(candidate, str) and _COUNTRY.match(candidate.upper()):
            return candidate.upper()
    return None


def _iso(value: object) -> object:
    return value.get("iso_code") if isinstance(value, Mapping) else None


def asn_of(rec: Mapping[str, Any]) -> AsnInfo | None:
    raw = rec.get("autonomous_system_number", rec.get("asn"))
    number: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, str):
        found = _ASN_TEXT.match(raw.strip())
        number = int(found.group(1)) if found else None
    if number is not None and not 0 <= number < 2**32:
        number = None
    name = rec.get("autonomous_system_organization", rec.get("as_name"))
    domain = rec.get("as_domain")
    if number is None and not isinstance(name, str):
        return None
    return AsnInfo(
        number,
        name if isinstance(name, str) and name else None,
        domain if isinstance(domain, str) and domain else None,
    )


def default_geo_folders(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where GeoIP updaters and distributions put .mmdb files, plus exwatch's own data folder."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local/share")
    return [Path("/usr/share/GeoIP"), Path("/var/lib/GeoIP"), Path(xdg) / "exwatch"]


def discover_mmdb(folders: Iterable[Path]) -> list[Path]:
    """Every *.mmdb file directly inside the given folders (missing folders are skipped)."""
    found: list[Path] = []
    for folder in folders:
        try:
            found.extend(sorted(p for p in Path(folder).glob("*.mmdb") if p.is_file()))
        except OSError:
            continue
    return found


@dataclass(slots=True)
class Detected:
    country: MmdbDatabase | None = None
    asn: MmdbDatabase | None = None
    warnings: list[str] = field(default_factory=list)


def detect_databases(folders: Iterable[Path]) -> Detected:
    """The newest country database and the newest ASN database found in `folders`.

    Unreadable or unrecognised files are skipped with a warning: auto-detection must never stop
    a run because of a stray file.
    """
    result = Detected()
    opened: list[MmdbDatabase] = []
    for path in discover_mmdb(folders):
        try:
            opened.append(MmdbDatabase.open(path))
        except DataError as exc:
            result.warnings.append(f"skipped {exc}")
    # Newest first; of the same age, a dedicated file before a combined one.
    newest_first = sorted(
        opened,
        key=lambda db: (db.build_date, not (db.provides_country and db.provides_asn)),
        reverse=True,
    )
    result.country = next((db for db in newest_first if db.provides_country), None)
    result.asn = next((db for db in newest_first if db.provides_asn), None)
    for db in opened:
        if db is not result.country and db is not result.asn:
            db.close()
    return result


__all__ = [
    "STALE_AFTER_DAYS",
    "AsnInfo",
    "Detected",
    "MmdbDatabase",
    "asn_of",
    "capabilities",
    "country_of",
    "default_geo_folders",
    "detect_databases",
    "discover_mmdb",
]
