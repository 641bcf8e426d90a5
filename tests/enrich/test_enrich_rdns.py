"""Forward-confirmed reverse DNS.

Real DNS for public addresses cannot be used in tests, so the resolver is a table; the system
resolver is exercised on loopback only (localhost from /etc/hosts).
"""

from __future__ import annotations

import asyncio

import pytest

from exwatch.enrich.rdns import (
    SYSTEM_RESOLVER,
    LookupFailed,
    PtrResult,
    Resolver,
    forward_confirmed_ptr,
    resolve_ptrs,
    system_forward,
)


class TableResolver:
    """PTR and A/AAAA answers from dicts; counts concurrent lookups."""

    def __init__(
        self,
        ptr: dict[str, str | None],
        addresses: dict[str, list[str]],
        delay: float = 0.0,
        slow: frozenset[str] = frozenset(),
    ) -> None:
        self.ptr, self.addresses, self.delay, self.slow = ptr, addresses, delay, slow
        self.active = self.peak = 0

    async def reverse(self, ip: str) -> str | None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(10 if ip in self.slow else self.delay)
            if ip not in self.ptr:
                raise LookupFailed("NXDOMAIN")
            return self.ptr[ip]
        finally:
            self.active -= 1

    async def forward(self, name: str) -> list[str]:
        if name not in self.addresses:
            raise LookupFailed("NXDOMAIN")
        return self.addresses[name]

    def resolver(self) -> Resolver:
        return Resolver(self.reverse, self.forward)


TABLE = TableResolver(
    ptr={
        "192.0.2.10": "mail.example.nl.",
        "192.0.2.11": "mail.politie.nl",  # a lie: the name points elsewhere
        "192.0.2.12": "ghost.example.nl",  # the name does not exist
        "192.0.2.13": None,
        "192.0.2.14": "192.0.2.14",  # getnameinfo echoing the address
        "2001:db8::25": "mx.example.be",
    },
    addresses={
        "mail.example.nl": ["192.0.2.99", "192.0.2.10"],
        "mail.politie.nl": ["198.51.100.1"],
        "mx.example.be": ["2001:db8:0:0::25"],
    },
)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("192.0.2.10", PtrResult("192.0.2.10", "mail.example.nl", "confirmed")),
        ("192.0.2.11", PtrResult("192.0.2.11", "mail.politie.nl", "unconfirmed")),
        ("192.0.2.12", PtrResult("192.0.2.12", "ghost.example.nl", "unconfirmed")),
        ("192.0.2.13", PtrResult("192.0.2.13", None, "no-ptr")),
        ("192.0.2.14", PtrResult("192.0.2.14", None, "no-ptr")),
        ("192.0.2.15", PtrResult("192.0.2.15", None, "no-ptr")),
        ("2001:db8::25", PtrResult("2001:db8::25", "mx.example.be", "confirmed")),
    ],
)
def test_forward_confirmation(ip: str, expected: PtrResult) -> None:
    assert asyncio.run(forward_confirmed_ptr(ip, TABLE.resolver())) == expected


def test_timeout_is_a_status() -> None:
    table = TableResolver({"192.0.2.1": "a.example"}, {}, slow=frozenset({"192.0.2.1"}))
    result = asyncio.run(forward_confirmed_ptr("192.0.2.1", table.resolver(), per_address=0.05))
    assert result == PtrResult("192.0.2.1", None, "timeout")


def test_concurrency_is_bounded_and_duplicates_resolved_once() -> None:
    ips = [f"192.0.2.{i}" for i in range(40)] * 2
    table = TableResolver({ip: None for ip in ips}, {}, delay=0.005)
    results = asyncio.run(resolve_ptrs(ips, table.resolver(), concurrency=4, per_address=1.0))
    assert len(results) == 40
    assert table.peak == 4
    assert {r.status for r in results.values()} == {"no-ptr"}


def test_system_resolver_on_loopback() -> None:
    result = asyncio.run(forward_confirmed_ptr("127.0.0.1", SYSTEM_RESOLVER, per_address=5.0))
    assert result.status == "confirmed"
    assert result.name is not None
    assert "localhost" in result.name
    assert "127.0.0.1" in asyncio.run(system_forward("localhost"))
