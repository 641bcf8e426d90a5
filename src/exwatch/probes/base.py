"""What a probe is, and the context it runs in.

A probe is a module-level `Probe` object: an id (`<protocol>-<thing>`), its risk class,
the stages it runs in, the requests it makes (declared, for documentation and review), and
an async `run(ctx)` that makes them through `ctx.fetch`.  Probes do no retries, logging or
storage: `fetch` records every response as an observation and matches the fingerprints on
it once; exceptions are ProbeErrors from `net/`, handled by `scan.host`.  A probe decides
from what the host has shown so far (`ctx`) whether its request is worth making: most
requests are only asked where earlier answers call for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from exwatch.checks.answer import Answer, failed
from exwatch.errors import ProbeError
from exwatch.fingerprint import (
    BY_ID,
    Fingerprint,
    HttpObservation,
    Sighting,
    combine,
    product_id,
    sightings,
)
from exwatch.net.client import HttpClient
from exwatch.net.http import Response
from exwatch.ntlm import NtlmChallenge


class Risk(StrEnum):
    """PASSIVE: requests any browser or mail client makes.  INTRUSIVE: touches a vulnerable
    code path (behavioural checks); refused unless explicitly allowed."""

    PASSIVE = "passive"
    INTRUSIVE = "intrusive"


class Stage(StrEnum):
    """FIRST runs on every host; DISCOVER where the first stage settled nothing (neither
    Exchange nor Exchange Online: OWA may be closed while EWS and Autodiscover are open);
    EXCHANGE where on-prem Exchange was found; CHECK (the opt-in checks, `--check`) where
    the finished fingerprint says on-prem Exchange and is not a suspect."""

    FIRST = "first"
    DISCOVER = "discover"
    EXCHANGE = "exchange"
    CHECK = "check"


# HttpObservation's own __new__ is a Python function; the tuple constructor it calls is not.
_new_observation = tuple.__new__


@dataclass(slots=True)
class ProbeContext:
    """Per-host state shared by the probes of one scan."""

    client: HttpClient
    host: str  # what the Host header names (hostname, or the address)
    observations: list[HttpObservation] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)
    ntlm: NtlmChallenge | None = None
    notes: list[str] = field(default_factory=list)
    stage: Stage = Stage.FIRST
    checks: dict[str, Any] = field(default_factory=dict)  # check id -> its JSON result
    check_requests: int = 0
    # combine() of the sightings so far: (sightings read, the last of them, NTLM read, the
    # answer); probes, the plan and the record ask for it several times per host while
    # nothing new came in.
    _fingerprint: tuple[int, Sighting | None, bool, Fingerprint] | None = None
    # has_su_build() so far: (sightings read, the last of them, the answer)
    _su_build: tuple[int, Sighting | None, bool] = (0, None, False)
    # What `fetch` asked so far: the probes, and the request targets in lower case (the
    # probes' "asked already?" tests, each several times per host, without a pass over the
    # observations).
    _asked: set[str] = field(default_factory=set)
    _targets: set[str] = field(default_factory=set)
    # product_lines() so far: (sightings read, the last of them, the answer)
    _lines: tuple[int, Sighting | None, frozenset[str]] = (0, None, frozenset())

    async def fetch(
        self,
        probe: str,
        method: str,
        path: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        """Make one request and record the response (raises ProbeError)."""
        response = await self.client.request(method, path, headers)
        obs = _new_observation(
            HttpObservation,
            (
                probe,
                path,
                response.status,
                tuple(response.headers),
                response.body.decode("latin-1"),
            ),
        )
        self.observations.append(obs)
        self._asked.add(probe)
        self._targets.add(path.lower())
        self.sightings.extend(sightings(obs))
        return response

    async def ask(
        self,
        method: str,
        path: str,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        fresh: bool = False,
    ) -> Answer:
        """A check's request: never raises for what the server does, and stays out of the
        fingerprint (a check's answers are judged by the check alone).  `fresh`: on a new
        connection, so an aborted request is told from a stale keep-alive one and a
        balancer's first server answers."""
        if fresh:
            self.client.close()
        self.check_requests += 1
        try:
            response = await self.client.request(method, path, headers)
        except ProbeError as exc:
            return failed(exc.status.value, str(exc))
        return Answer(response.status, tuple(response.headers), response.body)

    def has_su_build(self) -> bool:
        """Whether a four-part build was already read: later build probes can stop there."""
        seen, last, found = self._su_build
        found_list = self.sightings
        now = len(found_list)
        if self._sightings_changed(seen, last):
            # fetch only appends: read the sightings since the last answer, or all of them
            # when the list is not the one read then plus more
            if seen > now or (seen and found_list[seen - 1] is not last):
                seen, found = 0, False
            found = found or any(
                s.build is not None and s.build.count(".") == 3 for s in found_list[seen:]
            )
            self._su_build = now, found_list[-1] if now else None, found
        return found

    def _sightings_changed(self, seen: int, last: Sighting | None) -> bool:
        """Whether the sightings are no longer the `seen` ones ending with `last` (what a
        memo of them was worked out from)."""
        found = self.sightings
        return seen != len(found) or (bool(found) and found[-1] is not last)

    def fetched_target(self, target: str) -> bool:
        """Whether this exact request target was already asked (redirect loops, repeats)."""
        return target.lower() in self._targets

    def asked(self, probe: str) -> bool:
        """Whether probe `probe` made a request already."""
        return probe in self._asked

    def fingerprint(self) -> Fingerprint:
        """What the responses so far say (pure; worked out once per new sighting)."""
        found, ntlm, memo = self.sightings, self.ntlm is not None, self._fingerprint
        if memo is None or memo[2] != ntlm or self._sightings_changed(memo[0], memo[1]):
            fp = combine(found, ntlm=ntlm)
            self._fingerprint = memo = len(found), found[-1] if found else None, ntlm, fp
        return memo[3]

    def clue_sources(self) -> set[str]:
        """The evidence names of the clues seen so far (`windows-auth`, `control-path`...)."""
        return {s.source for s in self.sightings if s.kind == "clue"}

    def has_clue(self, entry: str) -> bool:
        return any(s.kind == "clue" and s.entry == entry for s in self.sightings)

    def owa_closed(self) -> bool:
        """The logon page was refused (401, 403, 404) without a sign of Exchange on it: OWA is
        not published anonymously, so /owa/service, /owa/ and errorFE.aspx are not either."""
        first = next((o for o in self.observations if o.probe == "http-owa-logon"), None)
        if first is None or first.status not in (401, 403, 404):
            return False
        return not any(
            s.probe == "http-owa-logon" and s.kind in ("marker", "build") for s in self.sightings
        )

    def product_lines(self) -> frozenset[str]:
        """The product lines (products.yaml ids) the builds seen, or a product marker, name
        (worked out once per new sighting: several probes ask)."""
        seen, last, lines = self._lines
        found = self.sightings
        if self._sightings_changed(seen, last):
            lines = frozenset(pid for s in found if s.build and (pid := product_id(s.build)))
            if not lines:
                lines = frozenset(p for s in found if (p := BY_ID[s.entry].product) is not None)
            self._lines = len(found), found[-1] if found else None, lines
        return lines

    def only_lines(self, *lines: str) -> bool:
        """Whether every product line seen is one of `lines` (False when none is known)."""
        seen = self.product_lines()
        return bool(seen) and seen <= set(lines)

    def header_values(self, name: str) -> list[str]:
        """Every value of header `name` across the responses so far, in order, distinct."""
        return list(
            dict.fromkeys([v.strip() for o in self.observations for n, v in o.headers if n == name])
        )


@dataclass(frozen=True, slots=True)
class Probe:
    id: str
    risk: Risk
    stages: tuple[Stage, ...]
    requests: tuple[str, ...]  # "METHOD /path" lines, as documentation
    description: str
    run: Callable[[ProbeContext], Awaitable[None]]
    default: bool = True  # in the default set (passive ones only); others are asked for by id


__all__ = ["Probe", "ProbeContext", "Risk", "Stage"]
