"""DNS lookups through the system resolver, on the event loop's executor (never blocking it).

The network layer's only resolver: the scanner resolves target hostnames with `addresses`
(scan/targets.py bounds it in time and count), and the opt-in forward-confirmed reverse DNS
(`--rdns`, enrich/rdns.py) asks `reverse_name` then `addresses`.  Failures (NXDOMAIN,
SERVFAIL, an unencodable name) come back as `LookupFailed` with the resolver's reason.
"""

from __future__ import annotations

import asyncio
import socket


class LookupFailed(Exception):
    """The resolver gave no answer (NXDOMAIN, SERVFAIL, a name it cannot encode)."""


async def reverse_name(ip: str) -> str | None:
    """The PTR name of an address, or None when the answer is empty."""
    loop = asyncio.get_running_loop()
    try:
        host, _port = await loop.getnameinfo((ip, 0), socket.NI_NAMEREQD)
    except (OSError, UnicodeError) as exc:  # gaierror and herror are OSErrors
        raise LookupFailed(str(exc)) from exc
    return host or None


async def addresses(name: str, *, family: int = socket.AF_UNSPEC) -> list[str]:
    """A name's addresses (A and AAAA unless `family` says), in the resolver's order, as
    the resolver wrote them (an IPv6 zone id included)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise LookupFailed(str(exc)) from exc
    return [str(info[4][0]) for info in infos]


__all__ = ["LookupFailed", "addresses", "reverse_name"]
