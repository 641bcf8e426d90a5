"""security.txt (RFC 9116): an organisation's own statement of where reports go.

With `exwatch notify --security-txt`, a host without a contact in the CERT's files gets the
`Contact:` e-mail addresses of the security.txt of its organisation's registered domain -
only a domain the CERT's own data names (a constituency or contacts entry, the scanned
hostname, a forward-confirmed PTR), never one a server claims in its certificate.

Fetching follows the scanner's rules: the name's addresses must pass the exclusion list and
the private-range refusal (unless allowed), requests carry the scanner's contact User-Agent,
one request at a time, bounded in time and size.  Unlike scanning, the certificate must be
valid for the domain (net/fetch.py).  `/.well-known/security.txt` is asked first, then the
legacy `/security.txt`; redirects are followed only to https URLs on the same domain or its
subdomains.  A file must be text/plain and name at least one Contact; an expired one
(`Expires` in the past) is not used.  A PGP-signed file is read inside its armour (the
signature is not checked).  Answers are kept in the store (`security_txt`) and reused for
`max_age`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from exwatch.errors import ProbeError
from exwatch.net.client import Timeouts
from exwatch.net.fetch import get, verified_context
from exwatch.notify.contacts import Contact, parse_address
from exwatch.scan.exclusions import Exclusions, is_reserved
from exwatch.scan.targets import ResolutionError, resolve
from exwatch.store import Store

PATHS = ("/.well-known/security.txt", "/security.txt")
MAX_REDIRECTS = 3
DEFAULT_MAX_AGE = timedelta(days=7)
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*?)[ \t]*$")
_LANG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*\Z")


@dataclass(frozen=True, slots=True)
class SecurityTxt:
    domain: str
    status: str  # found | absent | expired | invalid | refused | error
    url: str | None = None
    contacts: tuple[str, ...] = ()  # every Contact: value, in the file's order
    languages: tuple[str, ...] = ()
    expires: datetime | None = None
    detail: str = ""

    @property
    def emails(self) -> tuple[str, ...]:
        out: list[str] = []
        for uri in self.contacts:
            if uri.lower().startswith("mailto:"):
                address = parse_address(unquote(uri[7:].split("?", 1)[0]))
                if address is not None and address not in out:
                    out.append(address)
        return tuple(out)

    def contact(self) -> Contact | None:
        if self.status != "found" or not self.emails:
            return None
        return Contact(
            self.emails,
            "security.txt",
            f"security.txt of {self.domain} ({self.url})",
            languages=self.languages,
        )


def _unsign(text: str) -> str:
    """The signed content of an OpenPGP cleartext-signed file (RFC 4880 section 7)."""
    if not text.lstrip().startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return text
    lines = text.lstrip().splitlines()
    body: list[str] = []
    in_body = False
    for line in lines[1:]:
        if not in_body:
            if not line.strip():
                in_body = True  # the blank line after the armour headers (Hash: ...)
            continue
        if line.startswith("-----BEGIN PGP SIGNATURE-----"):
            break
        body.append(line[2:] if line.startswith("- ") else line)
    return "\n".join(body)


def _when(value: str) -> datetime | None:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse(text: str, *, domain: str, url: str, now: datetime) -> SecurityTxt:
    """Read a security.txt body; the status says whether its contacts may be used."""
    fields: dict[str, list[str]] = {}
    for raw in _unsign(text).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _FIELD.match(line)
        if match is None:
            continue  # RFC 9116: unknown or malformed lines are ignored
        fields.setdefault(match.group(1).lower(), []).append(match.group(2))
    contacts = tuple(v for v in fields.get("contact", []) if v)[:20]
    languages = tuple(
        tag.strip()
        for value in fields.get("preferred-languages", [])[:1]
        for tag in value.split(",")
        if _LANG.match(tag.strip())
    )
    expires = None
    notes: list[str] = []
    if "expires" in fields:
        expires = _when(fields["expires"][0])
        if expires is None:
            notes.append("Expires is not a date")
    else:
        notes.append("no Expires field (RFC 9116 requires one)")
    canon = fields.get("canonical", [])
    if canon and url not in canon:
        notes.append(f"Canonical names {', '.join(c[:100] for c in canon[:3])}, not {url}")
    status = "found"
    if not contacts:
        status, notes = "invalid", ["no Contact field", *notes]
    elif expires is not None and expires <= now:
        status, notes = "expired", [f"expired on {expires.date().isoformat()}", *notes]
    found = SecurityTxt(domain, status, url, contacts, languages, expires, "; ".join(notes))
    if status == "found" and not found.emails:
        return SecurityTxt(
            domain, "found", url, contacts, languages, expires,
            "; ".join(["no mailto: Contact (web form or phone only)", *notes]),
        )  # fmt: skip
    return found


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """The scanner's rules, as they apply to security.txt fetches."""

    exclusions: Exclusions
    allow_private: bool
    user_agent: str
    cafile: str | None = None
    connect_to: Mapping[str, tuple[str, int]] | None = None  # name -> (address, port)
    timeout: float = 10.0


def _refusal(address: str, policy: FetchPolicy) -> str | None:
    if address in policy.exclusions:
        return f"{address} is in the exclusion list"
    if not policy.allow_private and is_reserved(address):
        return f"{address} is in a private or reserved range (--allow-private overrides)"
    return None


async def _addresses(domain: str, policy: FetchPolicy) -> list[tuple[str, int]]:
    pinned = (policy.connect_to or {}).get(domain)
    if pinned is not None:
        return [pinned]
    return [(a, 443) for a in await resolve(domain, timeout=policy.timeout, limit=4)]


def _redirect(location: str, domain: str) -> tuple[str, str] | None:
    """(site, path) of a redirect we follow: https, same domain or a subdomain of it."""
    parts = urlsplit(location)
    site = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https" or not site or parts.port not in (None, 443):
        return None
    if site != domain and not site.endswith("." + domain):
        return None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return site, path


async def fetch(domain: str, policy: FetchPolicy, now: datetime) -> SecurityTxt:
    """Fetch and read the security.txt of `domain` under `policy`."""
    try:
        targets = await _addresses(domain, policy)
    except ResolutionError as exc:
        return SecurityTxt(domain, "error", detail=f"cannot resolve: {exc}")
    usable: list[tuple[str, int]] = []
    refusals: list[str] = []
    for address, port in targets:
        why = _refusal(address, policy)
        if why is None:
            usable.append((address, port))
        else:
            refusals.append(why)
    if not usable:
        return SecurityTxt(domain, "refused", detail="; ".join(refusals))
    address, port = usable[0]
    context = verified_context(policy.cafile)
    timeouts = Timeouts(connect=policy.timeout, tls=policy.timeout, read=policy.timeout,
                        host=policy.timeout * 2)  # fmt: skip
    absent: list[str] = []
    for first_path in PATHS:
        site, path = domain, first_path
        for _ in range(MAX_REDIRECTS + 1):
            url = f"https://{site}{path}"
            try:
                response = await get(
                    address, port, site, path, user_agent=policy.user_agent, context=context,
                    timeouts=timeouts,
                )  # fmt: skip
            except ProbeError as exc:
                return SecurityTxt(domain, "error", url, detail=f"{exc.status.value}: {exc}")
            if response.status in (301, 302, 303, 307, 308):
                target = _redirect(response.header("location") or "", domain)
                if target is None:
                    return SecurityTxt(
                        domain, "invalid", url,
                        detail=f"redirect to {str(response.header('location'))[:200]!r} is not"
                        f" https on {domain}",
                    )  # fmt: skip
                new_site, path = target
                if new_site != site:
                    # Another name of the same domain: it must pass the same checks.
                    try:
                        hops = await _addresses(new_site, policy)
                    except ResolutionError as exc:
                        return SecurityTxt(domain, "error", url, detail=f"cannot resolve: {exc}")
                    allowed = [h for h in hops if _refusal(h[0], policy) is None]
                    if not allowed:
                        return SecurityTxt(domain, "refused", url, detail=f"{new_site}: refused")
                    site, (address, port) = new_site, allowed[0]
                continue
            if response.status == 200:
                kind = (response.header("content-type") or "").split(";", 1)[0].strip().lower()
                if kind != "text/plain":
                    return SecurityTxt(
                        domain,
                        "invalid",
                        url,
                        detail=f"served as {kind[:60] or 'no type'}, not text/plain",
                    )
                if response.truncated:
                    return SecurityTxt(domain, "invalid", url, detail="larger than 64 KiB")
                body = response.body.decode("utf-8", errors="replace")
                return parse(body, domain=domain, url=url, now=now)
            absent.append(f"{url}: HTTP {response.status}")
            break
        else:
            return SecurityTxt(domain, "invalid", detail="too many redirects")
    return SecurityTxt(domain, "absent", detail="; ".join(absent))


class SecurityTxtLookup:
    """security.txt per domain for contact resolution: memory, then the store, then fetch."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        now: datetime,
        store: Store | None = None,
        max_age: timedelta = DEFAULT_MAX_AGE,
        fetch_limit: int = 500,
    ) -> None:
        self.policy = policy
        self.now = now
        self.store = store if store is not None and store.has_table("security_txt") else None
        self.max_age = max_age
        self.fetch_limit = fetch_limit
        self.fetched = 0
        self.results: dict[str, SecurityTxt] = {}

    def __call__(self, domain: str) -> Contact | None:
        return self.lookup(domain).contact()

    def lookup(self, domain: str) -> SecurityTxt:
        if domain in self.results:
            return self.results[domain]
        found = self._cached(domain)
        if found is None:
            if self.fetched >= self.fetch_limit:
                found = SecurityTxt(domain, "error", detail="over the fetch limit of this run")
            else:
                self.fetched += 1
                found = asyncio.run(fetch(domain, self.policy, self.now))
                self._keep(found)
        self.results[domain] = found
        return found

    def _cached(self, domain: str) -> SecurityTxt | None:
        if self.store is None:
            return None
        rows = self.store.query(
            "SELECT fetched_at, status, url, contacts, languages, expires, detail"
            " FROM security_txt WHERE domain = ?",
            [domain],
        )
        if not rows:
            return None
        fetched, status, url, contacts, languages, expires, detail = rows[0]
        if not isinstance(fetched, datetime) or self.now - fetched > self.max_age:
            return None
        if status == "found" and isinstance(expires, datetime) and expires <= self.now:
            status, detail = "expired", f"expired on {expires.date().isoformat()}"
        return SecurityTxt(
            domain, str(status), url, tuple(contacts or ()), tuple(languages or ()),
            expires if isinstance(expires, datetime) else None, str(detail or ""),
        )  # fmt: skip

    def _keep(self, found: SecurityTxt) -> None:
        if self.store is None:
            return
        with self.store.transaction():
            self.store.execute("DELETE FROM security_txt WHERE domain = ?", [found.domain])
            self.store.execute(
                "INSERT INTO security_txt (domain, fetched_at, status, url, contacts, languages,"
                " expires, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    found.domain, self.now, found.status, found.url, list(found.contacts),
                    list(found.languages), found.expires, found.detail[:1000],
                ],
            )  # fmt: skip

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for found in self.results.values():
            out[found.status] = out.get(found.status, 0) + 1
        return out


def parse_connect_to(values: list[str] | tuple[str, ...]) -> dict[str, tuple[str, int]]:
    """`NAME=ADDRESS:PORT` (IPv6 in brackets) -> {name: (address, port)}."""
    out: dict[str, tuple[str, int]] = {}
    for value in values:
        name, sep, target = value.partition("=")
        host, _, port_text = target.rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            port = int(port_text)
        except ValueError:
            port = 0
        if not sep or not name or not 0 < port < 65536:
            raise ValueError(f"--connect-to {value!r}: expected NAME=ADDRESS:PORT")
        out[name.lower().rstrip(".")] = (host, port)
    return out


def as_json(found: SecurityTxt) -> dict[str, Any]:
    return {
        "domain": found.domain,
        "status": found.status,
        "url": found.url,
        "emails": list(found.emails),
        "languages": list(found.languages),
        "detail": found.detail,
    }


__all__ = [
    "DEFAULT_MAX_AGE",
    "PATHS",
    "FetchPolicy",
    "SecurityTxt",
    "SecurityTxtLookup",
    "as_json",
    "fetch",
    "parse",
    "parse_connect_to",
]
