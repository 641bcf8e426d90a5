"""Who gets told: the contacts file, the opt-out list, and the rule that picks one contact.

Contacts file (CSV, header row; `#` lines are comments), kept by the CERT beside its
constituency file:

    match,addresses,organisation,language,escalation,domain
    192.0.2.0/24,it@gemeente.example;soc@gemeente.example,Gemeente Voorbeeld,nl,,gemeente.example
    AS64500,abuse@hoster.example,Hoster,en,noc@hoster.example,
    gemeente.example,it@gemeente.example,Gemeente Voorbeeld,nl,,

`match` is a CIDR or address, an AS number (`AS64500`) or a domain (and its subdomains), as
in the constituency file.  `addresses` is one or more e-mail addresses (separated by `;`,
`,` or spaces); `escalation` addresses are added (Cc) to escalations; `domain` names the
organisation's registered domain for `--security-txt`.  Any bad value is a DataError naming
file and line: a half-loaded contacts file would send reports to the wrong people.

Choosing a contact for a host (`Resolver.resolve`), most specific first:
  1. a network (CIDR) entry, longest prefix first; on equal prefixes the contacts file
     wins over the constituency file;
  2. a domain entry (longest suffix first) matched by the names the enrichment kept for
     the host (certificate, NTLM domain, confirmed PTR, scanned hostname), the same way;
  3. the organisation's security.txt (RFC 9116), with `--security-txt`;
  4. an AS entry (the network's operator, often a hoster).
Candidates without an address are skipped; the reason of the winner is recorded with the
message, and hosts that end without any are listed in the no-contact report.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from exwatch.enrich.constituency import MatchKind, parse_match
from exwatch.enrich.orgs import normalise_hostname, registered_domain, suffixes_of
from exwatch.errors import DataError

COLUMNS = ("match", "addresses", "organisation", "language", "escalation", "domain", "notes")
REQUIRED = ("match", "addresses")

_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*\Z")
_SPLIT = re.compile(r"[;,\s]+")

Source = Literal["contacts", "constituency", "security.txt"]
# Rank of a candidate's kind: higher wins before specificity is compared.
_KIND_RANK = {"cidr": 4, "domain": 3, "security.txt": 2, "asn": 1}


def parse_address(text: str) -> str | None:
    """A plain e-mail address (dot-atom local part, DNS domain) in canonical form, or None.

    Display names, comments, quoted local parts and non-ASCII local parts are refused: an
    address that needs them is better typed out correctly than guessed."""
    value = text.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    if not value or len(value) > 254 or value.count("@") != 1:
        return None
    local, domain = value.split("@")
    if len(local) > 64 or not _LOCAL.match(local):
        return None
    host = normalise_hostname(domain)
    if host is None:
        return None
    return f"{local}@{host}"


def parse_addresses(text: str | None, where: str) -> tuple[str, ...]:
    """Every address in a cell (`;`, `,` or space separated); DataError for a bad one."""
    if not text:
        return ()
    out: list[str] = []
    for part in _SPLIT.split(text.strip()):
        if not part:
            continue
        address = parse_address(part)
        if address is None:
            raise DataError(f"{where}: {part[:80]!r} is not an e-mail address")
        if address not in out:
            out.append(address)
    return tuple(out)


def language_of(text: str | None, where: str) -> str | None:
    if not text:
        return None
    value = text.strip()
    if not _LANGUAGE.match(value):
        raise DataError(f"{where}: language {value!r} is not a language tag such as nl or fr-BE")
    return value


@dataclass(frozen=True, slots=True)
class ContactEntry:
    line: int
    match: str
    kind: MatchKind
    addresses: tuple[str, ...]
    organisation: str | None = None
    language: str | None = None
    escalation: tuple[str, ...] = ()
    domain: str | None = None


class ContactsFile:
    """A loaded contacts file with longest-prefix and longest-suffix lookups."""

    def __init__(self, entries: Sequence[ContactEntry], source: str) -> None:
        self.entries = list(entries)
        self.source = source
        self._nets: dict[int, dict[int, dict[int, ContactEntry]]] = {4: {}, 6: {}}
        self._asns: dict[int, ContactEntry] = {}
        self._domains: dict[str, ContactEntry] = {}
        for entry in self.entries:
            if entry.kind == "cidr":
                net = ipaddress.ip_network(entry.match)
                self._nets[net.version].setdefault(net.prefixlen, {})[int(net.network_address)] = (
                    entry
                )
            elif entry.kind == "asn":
                self._asns[int(entry.match[2:])] = entry
            else:
                self._domains[entry.match] = entry
        self._lengths = {v: sorted(t, reverse=True) for v, t in self._nets.items()}

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def load(cls, path: str | Path) -> ContactsFile:
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise DataError(f"{path}: cannot read contacts file: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        return cls(parse_contacts(text, str(path)), path.name)

    def by_ip(self, ip: str) -> ContactEntry | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        value, bits = int(addr), addr.max_prefixlen
        for length in self._lengths[addr.version]:
            mask = ((1 << length) - 1) << (bits - length)
            found = self._nets[addr.version][length].get(value & mask)
            if found is not None:
                return found
        return None

    def by_asn(self, asn: int | None) -> ContactEntry | None:
        return None if asn is None else self._asns.get(asn)

    def by_domain(self, name: str) -> ContactEntry | None:
        for suffix in suffixes_of(name):
            found = self._domains.get(suffix)
            if found is not None:
                return found
        return None


def parse_contacts(text: str, source: str) -> list[ContactEntry]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    entries: list[ContactEntry] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            where = f"{source}:{line}"
            if header is None:
                header = [c.strip().lower() for c in row]
                unknown = [c for c in header if c not in COLUMNS]
                if unknown:
                    raise DataError(
                        f"{where}: unknown column(s) {', '.join(unknown)}; use {', '.join(COLUMNS)}"
                    )
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    raise DataError(f"{where}: missing column(s) {', '.join(missing)}")
                if len(set(header)) != len(header):
                    raise DataError(f"{where}: a column is named twice")
                continue
            if len(row) > len(header):
                raise DataError(f"{where}: {len(row)} fields, header has {len(header)}")
            cells = {
                name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)
            }
            kind, match = parse_match(cells["match"], where)
            addresses = parse_addresses(cells.get("addresses"), where)
            if not addresses:
                raise DataError(f"{where}: no address for {match}")
            domain = cells.get("domain") or None
            if domain is not None:
                name = normalise_hostname(domain)
                if name is None:
                    raise DataError(f"{where}: domain {domain[:80]!r} is not a DNS name")
                domain = name
            if match in seen:
                raise DataError(f"{where}: {match} already listed on line {seen[match]}")
            seen[match] = line
            entries.append(
                ContactEntry(
                    line=line,
                    match=match,
                    kind=kind,
                    addresses=addresses,
                    organisation=cells.get("organisation") or None,
                    language=language_of(cells.get("language"), where),
                    escalation=parse_addresses(cells.get("escalation"), where),
                    domain=domain,
                )
            )
    except csv.Error as exc:
        raise DataError(f"{source}:{reader.line_num}: malformed CSV: {exc}") from None
    if header is None:
        raise DataError(f"{source}: empty contacts file (no header row)")
    return entries


# -- opt-out ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OptOut:
    """Who asked not to be told: addresses, mail domains, networks and AS numbers.

    One entry per line, `#` starts a comment: `it@example.org`, `@example.org` or
    `example.org` (every address of that domain and its subdomains), `192.0.2.0/24` or an
    address, `AS64500`."""

    addresses: dict[str, str] = field(default_factory=dict)  # address -> where listed
    domains: dict[str, str] = field(default_factory=dict)
    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = field(
        default_factory=list
    )
    asns: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> OptOut:
        out = cls()
        for path in paths:
            try:
                lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
            except OSError as exc:
                raise DataError(f"{path}: cannot read opt-out list: {exc.strerror}") from None
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
            for number, raw in enumerate(lines, 1):
                text = raw.split("#", 1)[0].strip()
                if text:
                    out.add(text, f"{Path(path).name}:{number}")
        return out

    def add(self, text: str, where: str) -> None:
        if "@" in text and not text.startswith("@"):
            address = parse_address(text)
            if address is None:
                raise DataError(f"{where}: {text[:80]!r} is not an e-mail address")
            self.addresses[address] = where
            return
        if re.fullmatch(r"(?i)AS\d+", text):
            self.asns[int(text[2:])] = where
            return
        try:
            self.networks.append((ipaddress.ip_network(text, strict=False), where))
            return
        except ValueError:
            pass
        name = normalise_hostname(text.lstrip("@"))
        if name is None:
            raise DataError(f"{where}: {text[:80]!r} is not an address, @domain, CIDR or AS number")
        self.domains[name] = where

    def __bool__(self) -> bool:
        return bool(self.addresses or self.domains or self.networks or self.asns)

    def host(self, ip: str, asn: int | None) -> str | None:
        """Where the host's network or AS was opted out, or None."""
        if asn is not None and asn in self.asns:
            return self.asns[asn]
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, where in self.networks:
            if addr.version == net.version and addr in net:
                return where
        return None

    def address(self, address: str) -> str | None:
        """Where this address (or its domain) was opted out, or None."""
        if address in self.addresses:
            return self.addresses[address]
        domain = address.rsplit("@", 1)[-1]
        for suffix in suffixes_of(domain):
            if suffix in self.domains:
                return self.domains[suffix]
        return None


# -- resolution -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contact:
    """The addresses one host's findings go to, and why."""

    addresses: tuple[str, ...]
    source: Source
    reason: str
    organisation: str | None = None
    language: str | None = None
    languages: tuple[str, ...] = ()  # security.txt Preferred-Languages, in order
    escalation: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """One message per contact per run: hosts with the same addresses share it."""
        return ",".join(sorted(self.addresses))


@dataclass(frozen=True, slots=True)
class Resolution:
    contact: Contact | None
    reason: str  # why this contact, or why none
    opted_out: tuple[str, ...] = ()  # addresses dropped because they opted out


@dataclass(frozen=True, slots=True)
class _Candidate:
    rank: tuple[int, int, int]  # (kind, specificity, contacts file over constituency)
    contact: Contact


@dataclass(frozen=True, slots=True)
class HostKeys:
    """What resolution needs to know about a host (from its stored rows)."""

    ip: str
    asn: int | None
    names: tuple[str, ...]  # domain evidence (normalised DNS names), strongest first
    trusted_domains: tuple[str, ...]  # registered domains the CERT's own data vouches for
    enrichment: Mapping[str, Any]  # the enricher's answer (constituency contact, attribution)


SecurityTxtLookup = Callable[[str], "Contact | None"]


def _constituency_candidate(answer: Mapping[str, Any]) -> _Candidate | None:
    """The constituency's contact for the host, as the enrichment attributed it."""
    attribution = answer.get("attribution")
    contact = answer.get("contact")
    if not isinstance(attribution, Mapping) or not isinstance(contact, str) or not contact:
        return None
    rule = str(attribution.get("rule") or "")
    if not rule.startswith("constituency:"):
        return None
    try:
        addresses = parse_addresses(contact, "constituency")
    except DataError:
        return None  # a malformed cell: the no-contact report says so via the reason below
    if not addresses:
        return None
    matched_by = str(attribution.get("matched_by") or "")
    value = str(attribution.get("value") or "")
    source = str(attribution.get("source") or "constituency")
    line = rule.split(":", 1)[1]
    language = answer.get("language") if isinstance(answer.get("language"), str) else None
    organisation = answer.get("organisation")
    if matched_by == "cidr":
        try:
            length = ipaddress.ip_network(value).prefixlen
        except ValueError:
            return None
        rank = (_KIND_RANK["cidr"], length, 0)
        reason = f"constituency {source} line {line}: network {value}"
    elif matched_by == "asn":
        rank = (_KIND_RANK["asn"], 0, 0)
        reason = f"constituency {source} line {line}: {value} (network operator)"
    else:
        suffix = str(attribution.get("suffix") or value)
        rank = (_KIND_RANK["domain"], suffix.count(".") + 1, 0)
        reason = f"constituency {source} line {line}: domain {suffix} ({matched_by} {value})"
    return _Candidate(
        rank,
        Contact(
            addresses,
            "constituency",
            reason,
            organisation if isinstance(organisation, str) else None,
            language,
        ),
    )


def _entry_candidate(
    entry: ContactEntry, source: str, rank: tuple[int, int, int], how: str
) -> _Candidate:
    return _Candidate(
        rank,
        Contact(
            entry.addresses,
            "contacts",
            f"contacts {source} line {entry.line}: {how}",
            entry.organisation,
            entry.language,
            escalation=entry.escalation,
        ),
    )


class Resolver:
    """Pick each host's contact from the contacts file, the constituency and security.txt."""

    def __init__(
        self,
        contacts: ContactsFile | None = None,
        opt_out: OptOut | None = None,
        security_txt: SecurityTxtLookup | None = None,
    ) -> None:
        self.contacts = contacts
        self.opt_out = opt_out or OptOut()
        self.security_txt = security_txt

    def candidates(self, host: HostKeys) -> list[_Candidate]:
        found: list[_Candidate] = []
        own = _constituency_candidate(host.enrichment)
        if own is not None:
            found.append(own)
        book = self.contacts
        if book is not None:
            entry = book.by_ip(host.ip)
            if entry is not None:
                length = ipaddress.ip_network(entry.match).prefixlen
                found.append(
                    _entry_candidate(
                        entry,
                        book.source,
                        (_KIND_RANK["cidr"], length, 1),
                        f"network {entry.match}",
                    )
                )
            for name in host.names:
                entry = book.by_domain(name)
                if entry is not None:
                    found.append(
                        _entry_candidate(
                            entry,
                            book.source,
                            (_KIND_RANK["domain"], entry.match.count(".") + 1, 1),
                            f"domain {entry.match} (host name {name})",
                        )
                    )
                    break  # names come strongest first
            entry = book.by_asn(host.asn)
            if entry is not None:
                found.append(
                    _entry_candidate(
                        entry,
                        book.source,
                        (_KIND_RANK["asn"], 0, 1),
                        f"{entry.match} (network operator)",
                    )
                )
        found.sort(key=lambda c: c.rank, reverse=True)
        return found

    def trusted_domains(self, host: HostKeys) -> list[str]:
        """Registered domains whose security.txt may be asked: named by the CERT's own files
        (a contacts entry's `domain`, a matched domain entry) or by the scanned hostname or a
        forward-confirmed PTR - never a name only a server claims for itself."""
        out = list(host.trusted_domains)
        book = self.contacts
        if book is not None:
            for entry in (book.by_ip(host.ip), book.by_asn(host.asn)):
                if entry is not None and entry.domain:
                    out.append(registered_domain(entry.domain) or entry.domain)
            for name in host.names:
                entry = book.by_domain(name)
                if entry is not None:
                    out.append(registered_domain(entry.domain or entry.match) or entry.match)
                    break
        return list(dict.fromkeys(out))

    def resolve(self, host: HostKeys) -> Resolution:
        where = self.opt_out.host(host.ip, host.asn)
        if where is not None:
            return Resolution(None, f"network opted out ({where})")
        considered: list[str] = []
        dropped: list[str] = []
        pool = self.candidates(host)
        tried_security_txt = False
        index = 0
        while True:
            # security.txt sits between domain and AS entries; asked only when reached.
            if (
                not tried_security_txt
                and self.security_txt is not None
                and (index >= len(pool) or pool[index].rank[0] < _KIND_RANK["security.txt"])
            ):
                tried_security_txt = True
                for domain in self.trusted_domains(host):
                    found = self.security_txt(domain)
                    if found is not None:
                        pool.insert(index, _Candidate((_KIND_RANK["security.txt"], 0, 0), found))
                        break
                    considered.append(f"no usable security.txt for {domain}")
                continue
            if index >= len(pool):
                break
            candidate = pool[index]
            index += 1
            kept = [a for a in candidate.contact.addresses if self.opt_out.address(a) is None]
            gone = [a for a in candidate.contact.addresses if a not in kept]
            dropped.extend(gone)
            if not kept:
                considered.append(f"{candidate.contact.reason}: every address opted out")
                continue
            contact = candidate.contact
            if gone:
                contact = Contact(
                    tuple(kept), contact.source, contact.reason, contact.organisation,
                    contact.language, contact.languages, contact.escalation,
                )  # fmt: skip
            return Resolution(contact, contact.reason, tuple(dropped))
        if not considered:
            considered.append("no contact in the constituency or contacts file")
        return Resolution(None, "; ".join(considered), tuple(dropped))


__all__ = [
    "COLUMNS",
    "Contact",
    "ContactEntry",
    "ContactsFile",
    "HostKeys",
    "OptOut",
    "Resolution",
    "Resolver",
    "SecurityTxtLookup",
    "language_of",
    "parse_address",
    "parse_addresses",
    "parse_contacts",
]
