"""Is it on-prem Exchange, Exchange Online or neither, and which build? Pure evaluation of
fingerprint data over HTTP responses.

The knowledge is `knowledge/fingerprints.yaml`; this module compiles it once, matches each
response once (`sightings`), and combines everything seen behind one address into a
`Fingerprint` (`combine`).  No I/O beyond loading the packaged data file.

On-prem Exchange is one strong marker or build, two different weak markers, or a
`patterns` entry satisfied by clues of several responses (closed OWA).  Exchange Online
(one strong or two weak `online` sightings) is never on-prem Exchange, whatever markers
its front ends share with it.

Choosing one build when several are seen (a load balancer in front of servers on different
updates, or a page that names several versions): every distinct build is kept in
`builds_seen` and `build` is the oldest, because the weakest server behind the address is
the exposure.  A three-part build that equals the CU of a four-part one is that build seen
less precisely, not another server, so it is folded into it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

from exwatch import yamldoc
from exwatch.errors import BuildParseError, DataError
from exwatch.model import Build, Precision

if TYPE_CHECKING:
    from exwatch.selftest import CheckResult

KINDS = ("build", "marker", "proxy", "online", "clue")
WEIGHTS = ("strong", "weak")
BUILD_SOURCES = ("x-owa-version", "exporttool", "owa-path")
SOURCES = frozenset(
    {
        *BUILD_SOURCES,
        "owa-logon-page",
        "owa-redirect",
        "errorfe-redirect",
        "exchange-cookie",
        "x-feserver",
        "x-beserver",
        "x-calculatedbetarget",
        "kemp-esp",
        "f5-apm",
        "forefront-tmg",
        "forefront-uag",
        "citrix-gateway",
        "ntlm",
        "windows-auth",
        "auth-challenge",
        "control-path",
        "auth-endpoints",
        "online-be-target",
        "online-fe-proxyinfo",
        "online-fe-target",
        "online-efz",
        "online-fe-name",
        "online-build",
    }
)
# Product lines by the ids of products.yaml (markers name them with `product:`).
PRODUCT_NAMES = {
    "2003": "Exchange Server 2003",
    "2007": "Exchange Server 2007",
    "2010": "Exchange Server 2010",
    "2013": "Exchange Server 2013",
    "2016": "Exchange Server 2016",
    "2019": "Exchange Server 2019",
    "SE": "Exchange Server SE",
}
ONLINE_PRODUCT = "Exchange Online"
_MAX_BUILDS_PER_TEXT = 20  # a page naming hundreds of versions is hostile, not informative
_READS = re.compile(r"body|status|header\.[a-z0-9-]{1,64}")


class HttpObservation(NamedTuple):
    """One HTTP response as the fingerprints see it (header names lower-case).

    Named tuples, not frozen dataclasses, for the per-response objects: a scan makes
    several per host and a frozen dataclass costs about five times as much to build."""

    probe: str
    path: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: str


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    kind: str
    source: str
    reads: str
    pattern: re.Pattern[str]
    weight: str
    probes: frozenset[str] | None
    examples: tuple[dict[str, Any], ...]
    counter_examples: tuple[str, ...]
    status: frozenset[int] | None = None  # only responses with one of these codes
    product: str | None = None  # the product line a marker alone proves
    # Lower-case text every match must contain (derived from the pattern): a substring
    # test rules most responses out before the regex runs.
    needle: str | None = None
    # (?i) patterns also match U+0130, U+0131 (as i) and U+017F (as s), which lower() keeps:
    # their needle is only trusted on ASCII text.
    needle_ascii_only: bool = False


class Sighting(NamedTuple):
    """One entry matching one response (for build entries: one extracted build)."""

    entry: str
    kind: str
    source: str
    weight: str
    build: str | None
    probe: str
    path: str


@dataclass(frozen=True, slots=True)
class Pattern:
    """Clues of several responses that together mark Exchange."""

    id: str
    source: str
    at_least: int
    of: frozenset[str]
    all_of: frozenset[str]
    examples: tuple[frozenset[str], ...]
    counter_examples: tuple[frozenset[str], ...]

    def holds(self, clues: set[str] | frozenset[str]) -> bool:
        return self.all_of <= clues and len(self.of & clues) >= self.at_least


class Fingerprint(NamedTuple):
    """The combined verdict for one address.

    `is_exchange` means on-prem Exchange; `online` means Exchange Online's own front ends
    (the two never hold together).  `product` is the product line from the build, or from
    a marker that proves one when no build was read (Exchange 2003's logon form).  A named
    tuple, as the responses are: one is made per host and new sighting, and a frozen
    dataclass costs several times as much to build."""

    is_exchange: bool
    build: str | None
    precision: Precision | None
    sources: tuple[str, ...]
    builds_seen: tuple[str, ...]
    markers: tuple[str, ...]
    proxies: tuple[str, ...]
    online: bool = False
    online_sources: tuple[str, ...] = ()
    product: str | None = None


def _document(text: str) -> dict[str, Any]:
    doc = yamldoc.parse(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise DataError("fingerprints.yaml: top level must be a mapping with an `entries` list")
    return doc


def _status_filter(raw: object, where: str) -> frozenset[int] | None:
    if raw is None:
        return None
    if not (
        isinstance(raw, list) and raw and all(isinstance(s, int) and 100 <= s <= 599 for s in raw)
    ):
        raise DataError(f"{where}: status must be a list of HTTP status codes")
    return frozenset(raw)


def _load_entries(text: str) -> tuple[Entry, ...]:
    """Parse and validate the data file's entries; raise DataError naming the first bad one."""
    doc = _document(text)
    entries: list[Entry] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["entries"]):
        where = f"fingerprints.yaml entry {i}"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise DataError(f"{where}: needs an `id`")
        eid = raw["id"]
        where = f"fingerprints.yaml entry {eid!r}"
        if eid in seen:
            raise DataError(f"{where}: duplicate id")
        seen.add(eid)
        kind, source, reads = raw.get("kind"), raw.get("source"), raw.get("reads")
        if kind not in KINDS:
            raise DataError(f"{where}: kind must be one of {KINDS}")
        if source not in SOURCES:
            raise DataError(f"{where}: source {source!r} is not a known evidence name")
        if not isinstance(reads, str) or not _READS.fullmatch(reads):
            raise DataError(f"{where}: reads must be `body`, `status` or `header.<name>`")
        weight = raw.get("weight", "strong")
        if weight not in WEIGHTS:
            raise DataError(f"{where}: weight must be one of {WEIGHTS}")
        try:
            pattern = re.compile(str(raw.get("pattern", "")))
        except re.error as exc:
            raise DataError(f"{where}: pattern does not compile: {exc}") from exc
        if not raw.get("pattern"):
            raise DataError(f"{where}: empty pattern")
        if (kind == "build") != ("build" in pattern.groupindex):
            raise DataError(f"{where}: build entries, and only they, have a `build` group")
        probes = raw.get("probes")
        if probes is not None and not (
            isinstance(probes, list) and all(isinstance(p, str) for p in probes)
        ):
            raise DataError(f"{where}: probes must be a list of probe ids")
        product = raw.get("product")
        if product is not None and (kind != "marker" or product not in PRODUCT_NAMES):
            raise DataError(
                f"{where}: product names a product line ({', '.join(PRODUCT_NAMES)}) "
                "and only on markers"
            )
        examples = raw.get("examples")
        counters = raw.get("counter_examples")
        if not isinstance(examples, list) or not examples:
            raise DataError(f"{where}: needs at least one example")
        if not isinstance(counters, list) or not counters:
            raise DataError(f"{where}: needs at least one counter-example")
        for ex in examples:
            if not isinstance(ex, dict) or not isinstance(ex.get("text"), str):
                raise DataError(f"{where}: every example needs a `text`")
            if kind == "build" and not isinstance(ex.get("build"), str):
                raise DataError(f"{where}: build examples name the expected `build`")
        if not all(isinstance(c, str) for c in counters):
            raise DataError(f"{where}: counter-examples are strings")
        entries.append(
            Entry(
                id=eid,
                kind=kind,
                source=source,
                reads=reads,
                pattern=pattern,
                weight=weight,
                probes=None if probes is None else frozenset(probes),
                examples=tuple(examples),
                counter_examples=tuple(counters),
                needle=required_literal(pattern) if reads == "body" else None,
                needle_ascii_only=bool(pattern.flags & re.IGNORECASE),
                status=_status_filter(raw.get("status"), where),
                product=product,
            )
        )
    return tuple(entries)


def _id_set(raw: object, where: str, field: str, clues: set[str]) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise DataError(f"{where}: {field} must be a list of clue ids")
    unknown = sorted(set(raw) - clues)
    if unknown:
        raise DataError(f"{where}: {field} names {unknown}, which are not clue entries")
    return frozenset(raw)


def _load_patterns(text: str, entries: tuple[Entry, ...]) -> tuple[Pattern, ...]:
    """Parse and validate the `patterns` section against the clue entries."""
    raw_list = _document(text).get("patterns") or []
    if not isinstance(raw_list, list):
        raise DataError("fingerprints.yaml: `patterns` must be a list")
    clues = {e.id for e in entries if e.kind == "clue"}
    out: list[Pattern] = []
    ids = {e.id for e in entries}
    for i, raw in enumerate(raw_list):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise DataError(f"fingerprints.yaml pattern {i}: needs an `id`")
        where = f"fingerprints.yaml pattern {raw['id']!r}"
        if raw["id"] in ids:
            raise DataError(f"{where}: id already used")
        ids.add(raw["id"])
        if raw.get("source") not in SOURCES:
            raise DataError(f"{where}: source {raw.get('source')!r} is not a known evidence name")
        at_least = raw.get("at_least", 0)
        of = _id_set(raw.get("of"), where, "of", clues)
        all_of = _id_set(raw.get("all_of"), where, "all_of", clues)
        if not isinstance(at_least, int) or not 0 <= at_least <= len(of):
            raise DataError(f"{where}: at_least must be between 0 and the size of `of`")
        if not of and not all_of:
            raise DataError(f"{where}: names no clue")
        sets = []
        for field in ("examples", "counter_examples"):
            value = raw.get(field)
            if not isinstance(value, list) or not value:
                raise DataError(f"{where}: needs {field.replace('_', '-')}")
            sets.append(tuple(_id_set(v, where, field, clues) for v in value))
        out.append(Pattern(raw["id"], raw["source"], at_least, of, all_of, sets[0], sets[1]))
    return tuple(out)


_MIN_NEEDLE = 4  # shorter literals rule out too little to be worth a test


def required_literal(pattern: re.Pattern[str]) -> str | None:
    """The longest literal run every match of `pattern` contains, lower-cased; None when
    there is none of useful length.  Only the top-level sequence and the groups in it are
    read (each is mandatory); anything else ends a run, so the answer is never too long.
    The test is case-insensitive, which keeps it safe for (?i) patterns."""
    # The regex parser is private (no stable public API reads a pattern's structure); if a
    # later Python changes it, the gate is simply off and every regex runs.
    try:
        from re import _constants as c  # type: ignore[attr-defined,unused-ignore]
        from re import _parser  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None

    best = ""
    run: list[str] = []

    def end_run() -> None:
        nonlocal best
        if len(run) > len(best):
            best = "".join(run)
        run.clear()

    def walk(items: Any) -> None:
        for op, arg in items:
            if op is c.LITERAL:
                run.append(chr(arg))
            elif op is c.SUBPATTERN and arg[1] == 0 and arg[2] == 0:  # no local flags
                walk(arg[3])
            else:
                end_run()

    try:
        walk(_parser.parse(pattern.pattern, pattern.flags))
    except Exception:  # an unexpected parse tree: no gate rather than a wrong one
        return None
    end_run()
    return best.lower() if len(best) >= _MIN_NEEDLE else None


def _data_text() -> str:
    return resources.files("exwatch.knowledge").joinpath("fingerprints.yaml").read_text("utf-8")


@lru_cache(maxsize=1)
def data_document() -> dict[str, Any]:
    """The whole parsed data file (plausibility and the technique catalogue read it too)."""
    return _document(_data_text())


ENTRIES: tuple[Entry, ...] = _load_entries(_data_text())
PATTERNS: tuple[Pattern, ...] = _load_patterns(_data_text(), ENTRIES)
BY_ID: dict[str, Entry] = {e.id: e for e in ENTRIES}
_BODY_ENTRIES = tuple(e for e in ENTRIES if e.reads == "body")
_STATUS_ENTRIES = tuple(e for e in ENTRIES if e.reads == "status")
_HEADER_ENTRIES: dict[str, tuple[Entry, ...]] = {}
for _e in ENTRIES:
    if _e.reads.startswith("header."):
        _name = _e.reads.removeprefix("header.")
        _HEADER_ENTRIES[_name] = (*_HEADER_ENTRIES.get(_name, ()), _e)


@lru_cache(maxsize=4096)  # a census sees the same few hundred builds millions of times
def normalise_build(text: str) -> str | None:
    """'15.01.2176.009' -> '15.1.2176.9'; None when it is not a build."""
    try:
        return str(Build.parse(text))
    except BuildParseError:
        return None


def match_text(entry: Entry, text: str) -> list[str | None]:
    """What `entry` finds in one text: extracted builds (build entries) or [None] for a match."""
    if _ruled_out(entry, text, text.lower()):
        return []
    return _found(entry, text)


def _found(entry: Entry, text: str) -> list[str | None]:
    """`match_text` once the needle test has passed."""
    if entry.kind != "build":
        return [None] if entry.pattern.search(text) else []
    found: list[str | None] = []
    if entry.pattern.groups == 1:  # findall gives the build group itself, in one C call
        raws: Iterable[str] = dict.fromkeys(entry.pattern.findall(text))
    else:
        # a logon page names its build in every static path: each raw text once
        raws = dict.fromkeys(m.group("build") for m in entry.pattern.finditer(text))
    for raw in raws:
        build = normalise_build(raw)
        if build is not None and build not in found:
            found.append(build)
            if len(found) >= _MAX_BUILDS_PER_TEXT:
                break
    return found


def _ruled_out(entry: Entry, text: str, lowered: str) -> bool:
    """True when `entry` cannot match `text` (whose lower-case form is `lowered`) because
    its needle is absent."""
    if entry.needle is None or (entry.needle_ascii_only and not text.isascii()):
        return False
    return entry.needle not in lowered


class _Plan(NamedTuple):
    """The entries that can match one probe's responses with one status code: header entries
    by header name, body entries, and the status entries' sightings (a status text is fixed
    by its code, so those are matched once)."""

    headers: dict[str, tuple[Entry, ...]]
    body: tuple[Entry, ...]
    status: tuple[tuple[Entry, tuple[str | None, ...]], ...]


_plans: dict[tuple[str, int], _Plan] = {}
# What a plan's header entries find in one header value, by (probe, status, name, value):
# the same few values (WWW-Authenticate: Negotiate, an X-OWA-Version build) come back on
# most hosts, and the answer depends on nothing else.
_header_found: dict[tuple[str, int, str, str], tuple[tuple[Entry, str | None], ...]] = {}
_CACHE_MAX = 4096  # plans and remembered header values each; a hostile server picks both
_CACHED_VALUE_CHARS = 256
# What a plan's body entries find in one body, by (probe, status, body): most bodies a
# census reads are one of a few thousand (IIS's error pages, the 401 of every EWS and
# Autodiscover, redirects), and the key is the whole text, so a server can only make the
# memo forget, never answer for another.  Bodies up to 8 KiB, at most 1024: 8 MiB.
_body_found: dict[tuple[str, int, str], tuple[tuple[Entry, str | None], ...]] = {}
_BODY_CACHE_MAX = 1024
_CACHED_BODY_CHARS = 8 * 1024


def _applies(entry: Entry, probe: str, status: int) -> bool:
    return (entry.probes is None or probe in entry.probes) and (
        entry.status is None or status in entry.status
    )


def _plan(probe: str, status: int) -> _Plan:
    plan = _plans.get((probe, status))
    if plan is None:
        headers: dict[str, tuple[Entry, ...]] = {}
        for name, entries in _HEADER_ENTRIES.items():
            kept = tuple(e for e in entries if _applies(e, probe, status))
            if kept:
                headers[name] = kept
        text = str(status)
        plan = _Plan(
            headers,
            tuple(e for e in _BODY_ENTRIES if _applies(e, probe, status)),
            tuple(
                (e, tuple(found))
                for e in _STATUS_ENTRIES
                if _applies(e, probe, status) and (found := match_text(e, text))
            ),
        )
        if len(_plans) >= _CACHE_MAX:
            _plans.clear()
        _plans[(probe, status)] = plan
    return plan


def _in_header(
    entries: tuple[Entry, ...], key: tuple[str, int, str, str]
) -> tuple[tuple[Entry, str | None], ...]:
    """(entry, build or None) for each finding of `entries` in the header value key[3]."""
    found = _header_found.get(key)
    if found is None:
        value = key[3]
        found = tuple((e, build) for e in entries for build in _found(e, value))
        if len(value) <= _CACHED_VALUE_CHARS:
            if len(_header_found) >= _CACHE_MAX:
                _header_found.clear()
            _header_found[key] = found
    return found


def _in_body(
    entries: tuple[Entry, ...], key: tuple[str, int, str]
) -> tuple[tuple[Entry, str | None], ...]:
    """(entry, build or None) for each finding of `entries` in the body key[2]."""
    body = key[2]
    small = len(body) <= _CACHED_BODY_CHARS  # a longer one is not even hashed
    found = _body_found.get(key) if small else None
    if found is not None:
        return found
    lowered = body.lower()
    ascii_text = body.isascii()
    out: list[tuple[Entry, str | None]] = []
    for e in entries:
        needle = e.needle
        if needle is not None and (ascii_text or not e.needle_ascii_only) and needle not in lowered:
            continue  # `_ruled_out`, with the text's isascii() worked out once
        if e.kind != "build":
            if e.pattern.search(body):
                out.append((e, None))
            continue
        out.extend((e, build) for build in _found(e, body))
    found = tuple(out)
    if small:
        if len(_body_found) >= _BODY_CACHE_MAX:
            _body_found.clear()
        _body_found[key] = found
    return found


# Sighting's own __new__ is a Python function; the tuple constructor it calls is not.
_new_sighting = tuple.__new__


def sightings(obs: HttpObservation) -> list[Sighting]:
    """Every entry that matches this response (each entry evaluated once per response):
    header entries in header order, then body entries, then status entries."""
    probe, path, status, headers, body = obs
    plan = _plan(probe, status)
    out: list[Sighting] = []
    append = out.append
    if plan.headers:
        by_name = plan.headers
        for name, value in headers:
            entries = by_name.get(name)
            if entries is not None:
                for e, build in _in_header(entries, (probe, status, name, value)):
                    append(
                        _new_sighting(
                            Sighting, (e.id, e.kind, e.source, e.weight, build, probe, path)
                        )
                    )
    if body and plan.body:
        for e, build in _in_body(plan.body, (probe, status, body)):
            append(_new_sighting(Sighting, (e.id, e.kind, e.source, e.weight, build, probe, path)))
    for e, found in plan.status:
        for build in found:
            append(_new_sighting(Sighting, (e.id, e.kind, e.source, e.weight, build, probe, path)))
    return out


# The verdict rules, each in one place: `is_online` and `is_exchange` below and the one
# pass of `combine` gather the same evidence their own way and judge it here.
def _online(strong: bool, weak: set[str]) -> bool:
    """Exchange Online: one strong or two different weak `online` sightings."""
    return strong or len(weak) >= 2


def _on_prem(online: bool, decisive: bool, weak: set[str], patterns: list[Pattern]) -> bool:
    """On-prem Exchange: a build or strong marker (`decisive`), two different weak markers,
    or a satisfied pattern; never Exchange Online."""
    return not online and (decisive or len(weak) >= 2 or bool(patterns))


def _patterns(clues: set[str]) -> list[Pattern]:
    return [p for p in PATTERNS if p.holds(clues)] if clues else []


def is_online(found: Iterable[Sighting]) -> bool:
    """Exchange Online's own front ends: one strong or two different weak sightings."""
    weak: set[str] = set()
    for s in found:
        if s.kind == "online":
            if s.weight == "strong":
                return _online(True, weak)
            weak.add(s.entry)
    return _online(False, weak)


def satisfied_patterns(found: Iterable[Sighting]) -> list[Pattern]:
    """The `patterns` entries the clues among `found` satisfy."""
    return _patterns({s.entry for s in found if s.kind == "clue"})


def is_exchange(found: Sequence[Sighting]) -> bool:
    """On-prem Exchange: one strong marker or build sighting, two different weak markers,
    or a satisfied pattern; never a host that is Exchange Online."""
    online = is_online(found)
    weak: set[str] = set()
    for s in found:
        if s.kind == "build" or (s.kind == "marker" and s.weight == "strong"):
            return _on_prem(online, True, weak, [])
        if s.kind == "marker":
            weak.add(s.entry)
    return _on_prem(online, False, weak, [] if online else satisfied_patterns(found))


@lru_cache(maxsize=4096)  # asked several times per host (combine, the record, probes)
def product_family(build: str) -> str | None:
    """Product line from the build number alone (SE: 15.2 with third part >= 2562)."""
    try:
        b = Build.parse(build)
    except BuildParseError:
        return None
    if b.major == 15:
        if b.minor == 2:
            return "Exchange Server SE" if b.build >= 2562 else "Exchange Server 2019"
        return {0: "Exchange Server 2013", 1: "Exchange Server 2016"}.get(b.minor)
    return {6: "Exchange Server 2003", 8: "Exchange Server 2007", 14: "Exchange Server 2010"}.get(
        b.major
    )


_PRODUCT_IDS = {name: pid for pid, name in PRODUCT_NAMES.items()}


def product_id(build: str) -> str | None:
    """The products.yaml id of a build's product line ("2016", "SE"), or None."""
    name = product_family(build)
    return None if name is None else _PRODUCT_IDS.get(name)


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Build:
    return Build.parse(text)  # sightings hold normalised builds: this cannot fail


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# combine() by what it reads of each sighting (all but the probe and the path): hosts of
# one build and set-up answer alike, and a fingerprint is immutable.  Paths stay out of
# the key, so a server cannot park long strings here: entry fields and normalised builds
# are short, and 4096 lists of at most _COMBINED_SIGHTINGS stay a few MiB.  Longer lists
# are worked out each time.
_combined: dict[tuple[bool, tuple[tuple[Any, ...], ...]], Fingerprint] = {}
_COMBINED_SIGHTINGS = 64


def combine(found: Sequence[Sighting], *, ntlm: bool = False) -> Fingerprint:
    """Merge the sightings of one address into product evidence and one chosen build."""
    if len(found) > _COMBINED_SIGHTINGS:
        return _combine(found, ntlm)  # not even hashed
    key = (ntlm, tuple([s[:5] for s in found]))
    fp = _combined.get(key)
    if fp is None:
        fp = _combine(found, ntlm)
        if len(_combined) >= _CACHE_MAX:
            _combined.clear()
        _combined[key] = fp
    return fp


def _combine(found: Sequence[Sighting], ntlm: bool) -> Fingerprint:
    """`combine`, worked out."""
    # One pass gathers what `is_online`, `is_exchange` and the fields below each read (the
    # plan, the probes and the record ask for this once per new sighting of every host).
    online_strong = False
    online_weak: set[str] = set()
    online_sources: list[str] = []
    decisive = False  # a build or a strong marker
    weak_markers: set[str] = set()
    clues: set[str] = set()
    by_build: dict[str, set[str]] = {}
    marker_entries: list[str] = []  # markers and builds, in order
    markers: list[tuple[str, str]] = []  # (entry, source) of each marker
    proxies: list[str] = []
    # Unpacked, not read by attribute: a named tuple's fields cost a lookup each.
    for entry, kind, source, weight, build, _, _ in found:
        if kind == "build":
            decisive = True
            marker_entries.append(entry)
            if build is not None:
                sources_of = by_build.get(build)
                if sources_of is None:
                    by_build[build] = {source}
                else:
                    sources_of.add(source)
        elif kind == "marker":
            marker_entries.append(entry)
            markers.append((entry, source))
            if weight == "strong":
                decisive = True
            else:
                weak_markers.add(entry)
        elif kind == "online":
            online_sources.append(source)
            if weight == "strong":
                online_strong = True
            else:
                online_weak.add(entry)
        elif kind == "clue":
            clues.add(entry)
        elif kind == "proxy":
            proxies.append(source)
    online = _online(online_strong, online_weak)
    patterns = _patterns(clues)
    exchange = _on_prem(online, decisive, weak_markers, patterns)
    parsed = {text: _parsed(text) for text in by_build}
    full_cus = {b.cu_key for b in parsed.values() if b.revision is not None}
    # A CU-level build of a CU also seen with four parts is that build, less precisely.
    seen = [t for t, b in parsed.items() if b.revision is not None or b.cu_key not in full_cus]
    # The oldest build is the exposure (load balancers, mixed pages); the sources that
    # agree with it are its own and those of the CU-level sightings it absorbed.
    best = min(seen, key=lambda t: parsed[t].as_tuple()) if seen else None
    sources: list[str] = []
    if best is not None:
        agreed = set(by_build[best])
        if parsed[best].revision is not None:
            for other, ob in parsed.items():
                if ob.revision is None and ob.cu_key == parsed[best].cu_key:
                    agreed |= by_build[other]
        sources.extend(s for s in BUILD_SOURCES if s in agreed)
    for _, source in markers:
        if best is None or source not in BUILD_SOURCES:
            sources.append(source)
    sources.extend(p.source for p in patterns)
    proxy_sources = _dedupe(proxies)
    product: str | None = None
    if exchange:
        sources.extend(proxy_sources)
        if ntlm:
            sources.append("ntlm")
        if best is not None:
            product = product_family(best)
        else:
            hinted = (BY_ID[entry].product for entry, _ in markers)
            product = next((PRODUCT_NAMES[h] for h in hinted if h is not None), None)
    elif online:
        product = ONLINE_PRODUCT
    return Fingerprint(
        is_exchange=exchange,
        build=best if exchange else None,
        precision=None if best is None or not exchange else parsed[best].precision,
        sources=_dedupe(sources) if exchange else (),
        builds_seen=tuple(sorted(seen, key=lambda t: parsed[t].as_tuple())) if exchange else (),
        markers=_dedupe(marker_entries),
        proxies=proxy_sources,
        online=online,
        online_sources=_dedupe(online_sources) if online else (),
        product=product,
    )


def fingerprint(observations: Iterable[HttpObservation], *, ntlm: bool = False) -> Fingerprint:
    """Convenience: sightings of every response, combined."""
    found: list[Sighting] = []
    for obs in observations:
        found.extend(sightings(obs))
    return combine(found, ntlm=ntlm)


def selftest() -> CheckResult:
    """Check every example and counter-example of fingerprints.yaml (registered in CHECKS)."""
    from exwatch.selftest import CheckResult

    result = CheckResult("fingerprints")
    try:
        entries = _load_entries(_data_text())
    except DataError as exc:
        result.problems.append(str(exc))
        return result
    builds_by_reads: dict[str, list[Entry]] = {}
    for e in entries:
        if e.kind == "build":
            builds_by_reads.setdefault(e.reads, []).append(e)
    for e in entries:
        for ex in e.examples:
            result.examples += 1
            text = ex["text"]
            got = match_text(e, text)
            if not got:
                result.problems.append(f"{e.id}: example does not match: {text[:80]!r}")
                continue
            if e.kind == "build":
                want = normalise_build(ex["build"])
                if got[0] != want:
                    result.problems.append(f"{e.id}: example gave {got[0]!r}, expected {want!r}")
                others = [
                    o.id for o in builds_by_reads[e.reads] if o is not e and match_text(o, text)
                ]
                if others:
                    result.problems.append(
                        f"{e.id}: example also matched by build entries {others}: {text[:80]!r}"
                    )
        for counter in e.counter_examples:
            result.examples += 1
            if match_text(e, counter):
                result.problems.append(f"{e.id}: counter-example matches: {counter[:80]!r}")
    try:
        patterns = _load_patterns(_data_text(), entries)
    except DataError as exc:
        result.problems.append(str(exc))
        return result
    for p in patterns:
        for clues in p.examples:
            result.examples += 1
            if not p.holds(clues):
                result.problems.append(f"{p.id}: example does not hold: {sorted(clues)}")
        for clues in p.counter_examples:
            result.examples += 1
            if p.holds(clues):
                result.problems.append(f"{p.id}: counter-example holds: {sorted(clues)}")
    return result


__all__ = [
    "BY_ID",
    "ENTRIES",
    "ONLINE_PRODUCT",
    "PATTERNS",
    "PRODUCT_NAMES",
    "Fingerprint",
    "HttpObservation",
    "Pattern",
    "Sighting",
    "combine",
    "data_document",
    "fingerprint",
    "is_exchange",
    "is_online",
    "match_text",
    "normalise_build",
    "product_family",
    "product_id",
    "required_literal",
    "satisfied_patterns",
    "selftest",
    "sightings",
]
