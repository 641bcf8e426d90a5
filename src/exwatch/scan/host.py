"""Scan one address: the probe sequence, the fingerprint and the scan record.

`scan_host` never raises for anything a server does: every outcome is a record with a
status.  The status is that of the first stage (the logon-page request on every host);
failures of the follow-up probes keep what was gathered and are noted in `error`.  The
orchestrator adds `scan_id` and owns concurrency, rate limits and output.

What a host is goes into exactly one of three record keys: `exchange` (on-prem Exchange,
with build and verdicts), `exchange_online` (Microsoft's own front ends: no verdicts, no
on-prem count) or `suspect` (looks like Exchange but fails a plausibility check: a
honeypot or an impostor, with the reasons).  Consumers that count `exchange` therefore
count on-prem Exchange only.

The opt-in checks (`HostSettings.checks`, `--check`) run last, only where the finished
fingerprint says on-prem Exchange, and at most once per host per scan (`claim`); their
answers stay out of the fingerprint.  Their results go to the record's `checks`, and the
behavioural readings are merged into the verdicts as a separate source
(`exwatch.checks.verdicts`: a conflict is listed, never hidden).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from exwatch import __version__, plausibility
from exwatch.errors import ExwatchError, ProbeError, ReadTimeout, UsageError
from exwatch.fingerprint import (
    ONLINE_PRODUCT,
    Fingerprint,
    is_exchange,
    is_online,
    product_family,
)
from exwatch.model import Status
from exwatch.net.client import HttpClient, Timeouts
from exwatch.net.http import Limits
from exwatch.net.transport import DEFAULT_TRANSPORT, client_class
from exwatch.probes import BY_ID, Probe, ProbeContext, Stage, select
from exwatch.scan.record import new_record, timestamp_now

DEFAULT_USER_AGENT = (
    f"exwatch/{__version__} (Exchange exposure census; passive; contact: security@example.invalid)"
)
# Headers copied into the record (first value seen across the host's responses).
RECORD_HEADERS = (
    "server",
    "x-owa-version",
    "x-feserver",
    "x-beserver",
    "x-calculatedbetarget",
    "x-feproxyinfo",
    "x-feefzinfo",
    "x-diaginfo",
    "x-powered-by",
    "x-aspnet-version",
    "location",
    "www-authenticate",
)
_MAX_HEADER_VALUE = 512
_MAX_FRONT_ENDS = 16  # front-end names kept per record (a balancer over more is rare)
_PLAIN_PORTS = frozenset({80, 8080})
# The order of each later stage (probes not selected are skipped).  DISCOVER: Exchange 2003
# where IIS says it could be, then Autodiscover, and the rest only as far as the answers
# call for.  EXCHANGE: the build probes by how often each gives the four-part build, then
# the rarer ones (errorFE and the CU folder while no build is known, the balancer sweep,
# the honeypot checks where the evidence is thin).
DISCOVER_ORDER = (
    "http-legacy-owa",
    "http-autodiscover",
    "http-ews-ntlm",
    "http-control",
    "http-activesync",
)
EXCHANGE_ORDER = (
    "http-ecp-exporttool",
    "http-ews-ntlm",
    "http-owa-version",
    "http-autodiscover",
    "http-owa",
    "http-owa-static",
    "http-ecp-cu-folder",
    "http-lb-sweep",
    "http-control",
    "http-owa-resource",
    "http-frontend",
)
# The opt-in checks: the single behavioural requests first, the long shell sweep last.
CHECK_ORDER = (
    "http-proxylogon",
    "http-proxyshell",
    "http-proxynotshell",
    "http-webshells",
)


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Per-host scan settings (times in seconds, sizes in bytes)."""

    connect_timeout: float = 5.0
    tls_timeout: float = 5.0
    read_timeout: float = 5.0
    host_timeout: float = 20.0
    user_agent: str = DEFAULT_USER_AGENT
    tls: bool | None = None  # None: TLS unless the port is 80 or 8080
    send_sni: bool = True  # SNI = hostname when one is known (never an address)
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_body_bytes: int = 256 * 1024
    follow_ups: bool = True  # run the EXCHANGE stage where Exchange was found
    probes: tuple[str, ...] | None = None  # None: every passive probe
    allow_intrusive: bool = False
    checks: tuple[str, ...] = ()  # opt-in check ids (exwatch.checks.catalogue), in order
    check_timeout: float = 60.0  # more time for a host the checks run on
    transport: str = DEFAULT_TRANSPORT  # net.transport.TRANSPORTS

    def __post_init__(self) -> None:
        # Refuse unknown or (unless allowed) intrusive probes when the settings are made,
        # so a bad configuration fails once at startup, not once per host.
        select(self.probes, allow_intrusive=self.allow_intrusive)
        client_class(self.transport)
        if self.checks:
            from exwatch.checks import catalogue

            if catalogue.parse(self.checks) != self.checks:
                raise UsageError(f"checks must be known ids in catalogue order: {self.checks}")

    def use_tls(self, port: int) -> bool:
        return self.tls if self.tls is not None else port not in _PLAIN_PORTS


def _host_header(ip: str, port: int, hostname: str | None, tls: bool) -> tuple[str, str]:
    """(Host header value, bare host for same-host checks)."""
    host = hostname or (f"[{ip}]" if ":" in ip else ip)
    default = 443 if tls else 80
    return (host if port == default else f"{host}:{port}"), host


def _record_headers(ctx: ProbeContext) -> dict[str, str]:
    picked: dict[str, str] = {}
    for obs in ctx.observations:
        for name, value in obs.headers:
            if name in RECORD_HEADERS and name not in picked:
                picked[name] = value[:_MAX_HEADER_VALUE]
    return picked


@lru_cache(maxsize=4096)  # the catalogue is fixed while a scan runs; builds repeat a lot
def _assessment(build: str) -> dict[str, Any] | None:
    from exwatch import assess  # the knowledge base loads on first use, not at import

    try:
        return assess(build).to_json()
    except ExwatchError:
        return None


@lru_cache(maxsize=4096)
def _vulnerable_basis(build: str) -> dict[str, Any]:
    """Why each vulnerable verdict of a build holds (copied into each record: the checks'
    verdict merge edits a record's own)."""
    assessment = _assessment(build)
    if assessment is None:
        return {}
    basis = assessment["basis"]
    return {c: basis[c] for c, v in assessment["cves"].items() if v == "vulnerable"}


@lru_cache(maxsize=16)
def _end_of_life(product: str) -> bool | None:
    """Whether a product line (by name) is past its end of support, for a host whose
    product is known without a build (Exchange 2003's logon form)."""
    from datetime import date

    from exwatch.knowledge import catalogue as kb

    try:
        found = next((p for p in kb.default().products if p.name == product), None)
    except ExwatchError:
        return None
    if found is None or found.end_of_support is None:
        return None if found is None else False
    return found.end_of_support <= date.today()


def _exchange_fields(fp: Fingerprint) -> tuple[dict[str, Any], dict[str, str]]:
    """The record's `exchange` object and `cves` for an Exchange host."""
    info: dict[str, Any] = {
        "build": fp.build,
        "precision": None if fp.precision is None else fp.precision.value,
        "product": fp.product if fp.build is None else product_family(fp.build),
        "cu": None,
        "su": None,
        "eol": None if fp.product is None or fp.build else _end_of_life(fp.product),
        "known": False,
        "sources": list(fp.sources),
        "builds_seen": list(fp.builds_seen),
        "patch_lag": None,
        "basis": {},
    }
    cves: dict[str, str] = {}
    if fp.build is not None:
        assessment = _assessment(fp.build)
        if assessment is None:
            return info, cves  # a build the catalogue cannot place: product from the number
        cves = dict(assessment["cves"])
        info.update(
            product=assessment["product"] or info["product"],
            cu=assessment["cu"],
            su=assessment["su"],
            eol=assessment["eol"],
            known=assessment["known"],
            patch_lag=assessment["patch_lag"] and dict(assessment["patch_lag"]),
            # Why each vulnerable verdict holds (build compared with, source id); the other
            # verdicts' bases stay out of the per-host record: `exwatch assess BUILD` has them.
            basis=dict(_vulnerable_basis(fp.build)),
        )
    return info, cves


def _online_fields(fp: Fingerprint, ctx: ProbeContext) -> dict[str, Any]:
    """The record's `exchange_online` object: what marked the front end, no verdicts."""
    builds = [v for v in ctx.header_values("x-owa-version") if v.startswith("15.20.")]
    return {
        "product": ONLINE_PRODUCT,
        "sources": list(fp.online_sources),
        "front_ends": [v[:64] for v in ctx.header_values("x-feserver")[:_MAX_FRONT_ENDS]],
        "build": builds[0][:32] if builds else None,
    }


def _suspect_fields(fp: Fingerprint, reasons: list[plausibility.Reason]) -> dict[str, Any]:
    """The record's `suspect` object: what the host claims and why it is not believed."""
    return {
        "checks": [r.check for r in reasons],
        "reasons": [r.message for r in reasons],
        "product": fp.product,
        "build": fp.build,
        "builds_seen": list(fp.builds_seen),
        "sources": list(fp.sources),
    }


async def _run_stage(
    probes: tuple[Probe, ...], ctx: ProbeContext, *, stop_on_error: bool
) -> ProbeError | None:
    """Run probes in order; return the first error (stopping there when asked)."""
    first: ProbeError | None = None
    for probe in probes:
        try:
            await probe.run(ctx)
        except ProbeError as exc:
            ctx.notes.append(f"{probe.id}: {exc.status.value}: {exc}")
            first = first or exc
            if stop_on_error or (isinstance(exc, ReadTimeout) and "deadline" in str(exc)):
                return first
    return first


def _ordered(probes: tuple[Probe, ...], stage: Stage, order: tuple[str, ...]) -> tuple[Probe, ...]:
    by_id = {p.id: p for p in probes if stage in p.stages}
    return tuple(by_id[i] for i in order if i in by_id)


@lru_cache(maxsize=64)
def _plan(
    ids: tuple[str, ...] | None, allow_intrusive: bool
) -> tuple[tuple[Probe, ...], tuple[Probe, ...], tuple[Probe, ...], tuple[Probe, ...]]:
    """The selected probes, and those of the first, DISCOVER and EXCHANGE stages in order
    (the same for every host of a scan: worked out once)."""
    probes = select(ids, allow_intrusive=allow_intrusive)
    return (
        probes,
        tuple(p for p in probes if Stage.FIRST in p.stages),
        _ordered(probes, Stage.DISCOVER, DISCOVER_ORDER),
        _ordered(probes, Stage.EXCHANGE, EXCHANGE_ORDER),
    )


@lru_cache(maxsize=64)
def _bounds(settings: HostSettings) -> tuple[Timeouts, Limits]:
    """The client's timeouts and size caps (the same for every host of a scan)."""
    timeouts = Timeouts(
        settings.connect_timeout, settings.tls_timeout, settings.read_timeout, settings.host_timeout
    )
    return timeouts, Limits(
        settings.max_header_bytes, settings.max_headers, settings.max_body_bytes
    )


def _settled(ctx: ProbeContext) -> bool:
    return is_exchange(ctx.sightings) or is_online(ctx.sightings)


async def _discover(probes: tuple[Probe, ...], ctx: ProbeContext) -> None:
    """DISCOVER: one probe at a time, until the host is Exchange or Exchange Online (each
    probe asks only what the answers so far call for)."""
    ctx.stage = Stage.DISCOVER
    for probe in probes:
        if _settled(ctx):
            return
        error = await _run_stage((probe,), ctx, stop_on_error=True)
        if error is not None:
            return  # the host stopped answering: keep what was gathered


# Asked once per on-prem Exchange host before its checks: True to run them now, False when
# the host was checked already in this scan, or the `checks` object an earlier attempt made
# for it (a census task run again after its record was lost: reused, nothing is sent).
# A census answers from its store, hence an awaitable.
ClaimAnswer = bool | dict[str, Any]
Claim = Callable[[str, int], ClaimAnswer | Awaitable[ClaimAnswer]]


def _classify(ctx: ProbeContext) -> tuple[Fingerprint, list[plausibility.Reason]]:
    """The fingerprint, and for Exchange the plausibility reasons (empty: believed)."""
    fp = ctx.fingerprint()
    if fp.online or not fp.is_exchange:
        return fp, []
    os_version = None if ctx.ntlm is None else ctx.ntlm.os_version
    return fp, plausibility.reasons(fp, ctx.observations, ctx.sightings, os_version)


def _checks_skeleton(settings: HostSettings, skipped: str | None) -> dict[str, Any]:
    """The record's `checks` object before any check ran."""
    return {
        "asked": list(settings.checks),
        "ran": [],
        "skipped": skipped,
        "requests": 0,
        "compromise": None,
        "behaviour": {},
        "settled": {},
        "conflicts": [],
    }


async def _check_stage(
    settings: HostSettings,
    ctx: ProbeContext,
    on_prem: bool,
    claim: Claim | None,
    address: tuple[str, int],
) -> dict[str, Any]:
    """Run the asked checks on an on-prem Exchange host; the record's `checks` object."""
    from exwatch.checks import catalogue

    result = _checks_skeleton(settings, None)
    if not on_prem:
        result["skipped"] = "not on-prem Exchange"
        return result
    if claim is not None:
        answer = claim(*address)
        if inspect.isawaitable(answer):
            answer = await answer
        if isinstance(answer, dict):
            return answer
        if not answer:
            result["skipped"] = "already checked in this scan"
            return result
    ctx.stage = Stage.CHECK
    ctx.client.extend_deadline(settings.check_timeout)
    wanted = dict(zip(catalogue.probe_ids(settings.checks), settings.checks, strict=True))
    for probe_id in CHECK_ORDER:
        check_id = wanted.get(probe_id)
        if check_id is None:
            continue
        result["ran"].append(check_id)
        try:
            await BY_ID[probe_id].run(ctx)
        except ProbeError as exc:  # checks record failures themselves; this is a backstop
            ctx.checks[check_id] = {"state": "failed", "status": exc.status.value}
    result["requests"] = ctx.check_requests
    for check_id, outcome in ctx.checks.items():
        if check_id == catalogue.WEBSHELLS:
            result["compromise"] = outcome
        else:
            result["behaviour"][check_id] = outcome
    return result


def _merge_behaviour(record: dict[str, Any], checks: dict[str, Any]) -> None:
    """Merge the behavioural readings into an Exchange record's verdicts."""
    from exwatch.checks.behaviour import Reading
    from exwatch.checks.verdicts import merge, unjudged

    readings = [Reading.from_json(cid, r) for cid, r in checks["behaviour"].items()]
    build = record["exchange"]["build"]
    assessment = _assessment(build) if build else None
    skip = unjudged(assessment["basis"]) if assessment else frozenset()
    merged = merge(record["cves"], readings, skip, no_build=build is None)
    record["cves"] = merged.cves
    checks["settled"] = merged.settled
    checks["conflicts"] = merged.conflicts
    basis = record["exchange"]["basis"]
    for cve, verdict in merged.cves.items():
        if verdict != "vulnerable":
            basis.pop(cve, None)
        elif cve in merged.basis:
            basis[cve] = merged.basis[cve]


def _internal_error(record: dict[str, Any], exc: Exception) -> None:
    record["status"] = Status.UNKNOWN_ERROR.value
    record["error"] = f"internal error: {type(exc).__name__}: {exc}"[:500]


async def scan_host(
    ip: str,
    port: int,
    hostname: str | None,
    settings: HostSettings,
    claim: Claim | None = None,
) -> dict[str, Any]:
    """Probe one address and return its scan record (every field but `scan_id`).  `claim`
    keeps the opt-in checks to one run per (ip, port) in a scan (a census: in the census)."""
    t0 = time.perf_counter()
    record = new_record(ip, port, hostname, timestamp_now(), Status.UNKNOWN_ERROR.value, None)
    client: HttpClient | None = None
    ctx: ProbeContext | None = None
    classified: tuple[Fingerprint, list[plausibility.Reason]] | None = None
    checks: dict[str, Any] | None = None
    try:
        _, first_stage, discover, exchange = _plan(settings.probes, settings.allow_intrusive)
        timeouts, limits = _bounds(settings)
        tls = settings.use_tls(port)
        host_header, host = _host_header(ip, port, hostname, tls)
        client = client_class(settings.transport)(
            ip,
            port,
            use_tls=tls,
            sni=hostname if settings.send_sni else None,
            host_header=host_header,
            user_agent=settings.user_agent,
            timeouts=timeouts,
            limits=limits,
        )
        ctx = ProbeContext(client, host)
        failure = await _run_stage(first_stage, ctx, stop_on_error=True)
        if ctx.observations:
            record["status"] = Status.SUCCESS.value
            record["http_status"] = ctx.observations[0].status
        elif failure is not None:
            record["status"] = failure.status.value
        if ctx.observations and settings.follow_ups:
            if not _settled(ctx):
                await _discover(discover, ctx)
            if is_exchange(ctx.sightings):
                ctx.stage = Stage.EXCHANGE
                await _run_stage(exchange, ctx, stop_on_error=False)
        if ctx.observations:
            classified = _classify(ctx)
        if settings.checks and classified is not None:
            fp, why = classified
            on_prem = fp.is_exchange and not fp.online and not why
            checks = await _check_stage(settings, ctx, on_prem, claim, (ip, port))
    except Exception as exc:  # an unforeseen server behaviour must not end the scan
        _internal_error(record, exc)
    finally:
        if client is not None:
            client.close()

    try:
        if client is not None:
            record["tls"] = client.tls
        if ctx is not None:
            if ctx.notes and record["error"] is None:
                record["error"] = "; ".join(ctx.notes)[:1000]
            if ctx.ntlm is not None:
                record["ntlm"] = ctx.ntlm.to_json()
            record["headers"] = _record_headers(ctx)
            fp, why = classified or _classify(ctx)
            if fp.online:
                record["exchange_online"] = _online_fields(fp, ctx)
            elif fp.is_exchange:
                if why:
                    record["suspect"] = _suspect_fields(fp, why)
                else:
                    record["exchange"], record["cves"] = _exchange_fields(fp)
        if settings.checks:
            if checks is None:  # the host failed before the checks could run
                checks = _checks_skeleton(settings, "no answer")
            record["checks"] = checks
            if record["exchange"] is not None and checks.get("behaviour"):
                _merge_behaviour(record, checks)
    except Exception as exc:  # keep the record; say what went wrong
        _internal_error(record, exc)
    record["duration_ms"] = round((time.perf_counter() - t0) * 1000.0, 3)
    return record


__all__ = [
    "CHECK_ORDER",
    "DEFAULT_USER_AGENT",
    "DISCOVER_ORDER",
    "EXCHANGE_ORDER",
    "RECORD_HEADERS",
    "HostSettings",
    "scan_host",
]
