"""Forward-confirmed reverse DNS: a PTR name counts as evidence only if it resolves back.

Anyone controlling a reverse zone can publish any PTR name (e.g. mail.politie.nl); only when that
name's A/AAAA records contain the address does it say something about the owner.  The resolver is
a pair of async callables so tests can supply a table; the system resolver is the network
layer's (`net/dns.py`: the event loop's getnameinfo/getaddrinfo in the default executor, so
lookups never block the loop).  Opt-in (`--rdns`): it sends DNS queries for every scanned address.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from exwatch.net import dns
from exwatch.net.dns import LookupFailed

PtrStatus = Literal["confirmed", "unconfirmed", "no-ptr", "timeout", "error"]
ReverseLookup = Callable[[str], Awaitable[str | None]]
ForwardLookup = Callable[[str], Awaitable[list[str]]]

DEFAULT_TIMEOUT = 3.0
DEFAULT_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class Resolver:
    reverse: ReverseLookup  # address -> PTR name, or None
    forward: ForwardLookup  # name -> addresses (A and AAAA)


@dataclass(frozen=True, slots=True)
class PtrResult:
    ip: str
    name: str | None
    status: PtrStatus

    @property
    def confirmed(self) -> bool:
        return self.status == "confirmed"

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status}


async def system_reverse(ip: str) -> str | None:
    return await dns.reverse_name(ip)


async def system_forward(name: str) -> list[str]:
    return await dns.addresses(name)


SYSTEM_RESOLVER = Resolver(system_reverse, system_forward)


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.split("%", 1)[0]) == ipaddress.ip_address(b)
    except ValueError:
        return False


async def forward_confirmed_ptr(
    ip: str, resolver: Resolver = SYSTEM_RESOLVER, per_address: float = DEFAULT_TIMEOUT
) -> PtrResult:
    """The PTR name of `ip` and whether it resolves back to `ip` (within `per_address` seconds)."""
    name: str | None = None
    try:
        async with asyncio.timeout(per_address):
            try:
                found = await resolver.reverse(ip)
            except LookupFailed:
                return PtrResult(ip, None, "no-ptr")
            if not found or _is_address(found.rstrip(".")):
                # getnameinfo without a PTR may echo the address; that is no name.
                return PtrResult(ip, None, "no-ptr")
            name = found.rstrip(".")
            try:
                addresses = await resolver.forward(name)
            except LookupFailed:
                return PtrResult(ip, name, "unconfirmed")
    except TimeoutError:
        return PtrResult(ip, name, "timeout")
    except (OSError, UnicodeError, ValueError):
        return PtrResult(ip, name, "error")
    if any(_same_address(addr, ip) for addr in addresses):
        return PtrResult(ip, name, "confirmed")
    return PtrResult(ip, name, "unconfirmed")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


async def resolve_ptrs(
    ips: Iterable[str],
    resolver: Resolver = SYSTEM_RESOLVER,
    concurrency: int = DEFAULT_CONCURRENCY,
    per_address: float = DEFAULT_TIMEOUT,
) -> dict[str, PtrResult]:
    """Forward-confirmed PTR for each distinct address, at most `concurrency` at a time."""
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(ip: str) -> PtrResult:
        async with limit:
            return await forward_confirmed_ptr(ip, resolver, per_address)

    distinct = list(dict.fromkeys(ips))
    results = await asyncio.gather(*(one(ip) for ip in distinct))
    return {r.ip: r for r in results}


__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT",
    "SYSTEM_RESOLVER",
    "LookupFailed",
    "PtrResult",
    "PtrStatus",
    "Resolver",
    "forward_confirmed_ptr",
    "resolve_ptrs",
    "system_forward",
    "system_reverse",
]
