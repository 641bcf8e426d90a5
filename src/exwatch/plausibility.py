"""Is a host that looks like Exchange plausibly Exchange? Pure checks for honeypots and
impostors.

A honeypot serving a copied OWA page, or a phishing kit dressed in Exchange headers,
shows markers and even a build; counted as Exchange it inflates the census and gets
verdicts and notifications.  Real Exchange runs on IIS of the Windows releases its
product line supports, answers a random path with 404, serves the static files its logon
page names, and never carries Exchange Online's build train.  A host that claims Exchange
and breaks one of these rules is recorded as `suspect` with the reasons, apart from the
Exchange hosts.  The rules are data (the `plausibility` section of fingerprints.yaml,
with examples the self-test checks); this module reads them once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exwatch.errors import DataError
from exwatch.fingerprint import (
    PRODUCT_NAMES,
    Fingerprint,
    HttpObservation,
    Sighting,
    data_document,
    product_id,
)

if TYPE_CHECKING:
    from exwatch.selftest import CheckResult

CONTROL_PROBE = "http-control"
RESOURCE_PROBE = "http-owa-resource"
CHECK_IDS = (
    "iis-version",
    "windows-version",
    "foreign-server",
    "catch-all",
    "missing-resource",
    "resource-is-page",
    "online-build",
)
_IIS = re.compile(r"^\s*Microsoft-IIS/(\d{1,2}\.\d{1,2})\b")
_MAX_DETAIL = 120  # server-controlled text in a reason stays short


@dataclass(frozen=True, slots=True)
class Rules:
    iis: dict[str, frozenset[str]]  # product id -> IIS versions of its Windows releases
    windows: dict[str, tuple[str, ...]]  # product id -> Windows version prefixes
    foreign: re.Pattern[str]
    server_side: frozenset[str]
    messages: dict[str, str]
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reason:
    check: str
    message: str


def _product_table(raw: object, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict) or not isinstance(raw.get("by_product"), dict):
        raise DataError(f"{where}: needs a `by_product` mapping")
    table: dict[str, tuple[str, ...]] = {}
    for pid, versions in raw["by_product"].items():
        if pid not in PRODUCT_NAMES:
            raise DataError(f"{where}: {pid!r} is not a product line")
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise DataError(f"{where}: {pid}: a list of version strings")
        table[pid] = tuple(versions)
    return table


def load_rules(doc: dict[str, Any]) -> Rules:
    """The `plausibility` section, validated; raise DataError naming what is wrong."""
    section = doc.get("plausibility")
    where = "fingerprints.yaml plausibility"
    if not isinstance(section, dict):
        raise DataError(f"{where}: missing")
    iis = _product_table(section.get("iis_versions"), f"{where}.iis_versions")
    windows = _product_table(section.get("windows_versions"), f"{where}.windows_versions")
    foreign = section.get("foreign_servers")
    if not isinstance(foreign, dict) or not isinstance(foreign.get("pattern"), str):
        raise DataError(f"{where}.foreign_servers: needs a `pattern`")
    try:
        foreign_rx = re.compile(foreign["pattern"])
    except re.error as exc:
        raise DataError(f"{where}.foreign_servers: pattern does not compile: {exc}") from exc
    server_side = section.get("server_side_sources")
    if not isinstance(server_side, list) or not all(isinstance(s, str) for s in server_side):
        raise DataError(f"{where}.server_side_sources: a list of evidence names")
    messages = section.get("checks")
    if not isinstance(messages, dict) or set(messages) != set(CHECK_IDS):
        raise DataError(f"{where}.checks: one message for each of {', '.join(CHECK_IDS)}")
    return Rules(
        iis={k: frozenset(v) for k, v in iis.items()},
        windows=windows,
        foreign=foreign_rx,
        server_side=frozenset(server_side),
        messages={k: str(v) for k, v in messages.items()},
        doc=section,
    )


RULES = load_rules(data_document())


def _products(fp: Fingerprint) -> set[str]:
    found = {pid for b in fp.builds_seen if (pid := product_id(b)) is not None}
    if not found and fp.product is not None:
        found = {pid for pid, name in PRODUCT_NAMES.items() if name == fp.product}
    return found


def iis_plausible(products: Iterable[str], server: str, rules: Rules = RULES) -> bool:
    """False when `server` is an IIS version none of `products` runs on."""
    m = _IIS.match(server)
    if m is None:
        return True  # a reverse proxy's header says nothing about the Windows behind it
    allowed: set[str] = set()
    known = False
    for pid in products:
        if pid in rules.iis:
            known = True
            allowed |= rules.iis[pid]
    return not known or m.group(1) in allowed


def windows_plausible(products: Iterable[str], os_version: str, rules: Rules = RULES) -> bool:
    """False when the NTLM challenge's Windows version is one none of `products` runs on."""
    prefixes = [p for pid in products for p in rules.windows.get(pid, ())]
    if not prefixes:
        return True
    return any(os_version == p or os_version.startswith(p + ".") for p in prefixes)


def needs_request_checks(fp: Fingerprint, rules: Rules = RULES) -> bool:
    """Whether the host's Exchange evidence is all of a kind a copied page can carry, so the
    random-path and static-file requests are worth making."""
    return fp.is_exchange and not (set(fp.sources) & rules.server_side)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


def _header(obs: HttpObservation, name: str) -> str | None:
    return next((v for n, v in obs.headers if n == name), None)


def reasons(
    fp: Fingerprint,
    observations: Sequence[HttpObservation],
    found: Sequence[Sighting],
    ntlm_os: str | None,
    rules: Rules = RULES,
) -> list[Reason]:
    """Why a host that looks like on-prem Exchange is probably not; [] when plausible."""
    if not fp.is_exchange:
        return []
    products = _products(fp)
    names = " or ".join(sorted(PRODUCT_NAMES[p] for p in products)) or "Exchange"
    out: list[Reason] = []

    def add(check: str, detail: str) -> None:
        if any(r.check == check for r in out):
            return  # one reason per check: the first is enough to explain it
        message = rules.messages[check].format(detail=_short(detail), product=names)
        out.append(Reason(check, message))

    servers = dict.fromkeys(
        v for obs in observations for n, v in obs.headers if n == "server"
    )  # ordered, distinct
    for server in servers:
        if not iis_plausible(products, server, rules):
            add("iis-version", server)
        if rules.foreign.search(server):
            add("foreign-server", server)
    if ntlm_os is not None and not windows_plausible(products, ntlm_os, rules):
        add("windows-version", ntlm_os)
    for obs in observations:
        if obs.probe == CONTROL_PROBE and obs.status == 200:
            add("catch-all", str(obs.status))  # not the path: it is random, records are not
        if obs.probe == RESOURCE_PROBE:
            ctype = (_header(obs, "content-type") or "").lower()
            if obs.status != 200:
                add("missing-resource", f"{obs.path}: {obs.status}")
            elif "html" in ctype or "<html" in obs.body[:512].lower():
                add("resource-is-page", obs.path)
    if any(s.entry == "online-build" for s in found) and not fp.online:
        version = next(
            (v for obs in observations for n, v in obs.headers if n == "x-owa-version"), "15.20"
        )
        add("online-build", version.strip())
    return out


def selftest() -> CheckResult:
    """Check the examples of fingerprints.yaml's plausibility section (registered in CHECKS)."""
    from exwatch.selftest import CheckResult

    result = CheckResult("plausibility")
    try:
        rules = load_rules(data_document())
    except DataError as exc:
        result.problems.append(str(exc))
        return result
    for ex in rules.doc["iis_versions"].get("examples") or []:
        result.examples += 1
        if iis_plausible([ex["product"]], ex["server"], rules) != ex["plausible"]:
            result.problems.append(f"plausibility.iis_versions: example fails: {ex}")
    for ex in rules.doc["windows_versions"].get("examples") or []:
        result.examples += 1
        if windows_plausible([ex["product"]], ex["os"], rules) != ex["plausible"]:
            result.problems.append(f"plausibility.windows_versions: example fails: {ex}")
    foreign = rules.doc["foreign_servers"]
    for text in foreign.get("examples") or []:
        result.examples += 1
        if not rules.foreign.search(text):
            result.problems.append(f"plausibility.foreign_servers: example does not match: {text}")
    for text in foreign.get("counter_examples") or []:
        result.examples += 1
        if rules.foreign.search(text):
            result.problems.append(f"plausibility.foreign_servers: counter-example matches: {text}")
    return result


__all__ = [
    "CHECK_IDS",
    "RULES",
    "Reason",
    "Rules",
    "iis_plausible",
    "load_rules",
    "needs_request_checks",
    "reasons",
    "selftest",
    "windows_plausible",
]
